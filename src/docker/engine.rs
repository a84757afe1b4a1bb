//! The Docker engine, through its API (bollard): connecting to it, and
//! creating containers (see [`super::container`] and [`super::images`]).

use std::collections::HashMap;
use std::sync::Mutex;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, ListContainersOptions};
use bollard::Docker;

use super::error::DockerError;
use super::lifetime::{force_remove, owner_gone, LABEL_OWNER, LIVE};

/// A connection to a Docker daemon.
#[derive(Clone)]
pub struct Engine {
    pub(super) docker: Docker,
    pub(super) version: String,
    /// Platforms this engine was seen to run.
    pub(super) platforms: std::sync::Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine(API {})", self.version)
    }
}

impl Engine {
    /// Connect to the engine the environment names (`DOCKER_HOST`,
    /// `DOCKER_CONTEXT`, the docker CLI's current context, else the local
    /// socket: see [`super::endpoint`]) and agree on an API version.
    /// `needs` says who needs it, for the error: "apt recipes need".
    pub async fn connect(needs: &str) -> Result<Engine, DockerError> {
        let endpoint =
            super::endpoint::resolve(&|k| std::env::var(k).ok().filter(|v| !v.is_empty()))?;
        tracing::debug!("docker engine: {endpoint}");
        let docker = super::connect::open(&endpoint, needs).await?;
        let version = docker.client_version().to_string();
        tracing::debug!("docker API {version}");
        let engine = Engine {
            docker,
            version,
            platforms: Default::default(),
        };
        let reaped = engine.reap_orphans().await;
        if reaped > 0 {
            tracing::info!("removed {reaped} container(s) left by runs that were killed");
        }
        Ok(engine)
    }

    /// Remove containers whose owning `bundle` process on this machine is
    /// gone. Returns how many.
    async fn reap_orphans(&self) -> usize {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![LABEL_OWNER.to_string()]);
        let Ok(list) = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
        else {
            return 0;
        };
        let mut n = 0;
        for c in list {
            let owner = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_OWNER))
                .cloned()
                .unwrap_or_default();
            let Some(id) = c.id.filter(|_| owner_gone(&owner)) else {
                continue;
            };
            if force_remove(&self.docker, &id).await.is_ok() {
                n += 1;
            }
        }
        n
    }

    /// The API version in use (the lower of client's and daemon's).
    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// Create a container for `platform`, recorded in the process-wide
    /// list until removed. Returns its id.
    pub(super) async fn create(
        &self,
        body: ContainerCreateBody,
        platform: &str,
    ) -> Result<String, bollard::errors::Error> {
        // A create cut short (Ctrl-C, SIGTERM) may still finish in the
        // daemon, with an id this process never learns: the guard says so
        // to `remove_leftovers`, which then looks for it by owner.
        let mut guard = super::lifetime::Creating::new(&self.docker);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: None,
                    platform: platform.to_string(),
                }),
                body,
            )
            .await;
        guard.finished();
        let created = created?;
        LIVE.lock()
            .expect("poisoned")
            .insert(created.id.clone(), self.docker.clone());
        Ok(created.id)
    }
}
