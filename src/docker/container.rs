//! Containers: started so that they cannot outlive this process, commands
//! run in them, and files in and out through the archive endpoint.

use std::future::Future;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, DownloadFromContainerOptions, UploadToContainerOptions,
};
use futures_util::StreamExt;

use super::engine::Engine;
use super::error::{api, not_found, removing, DockerError};
use super::lifetime::{force_remove, labels, LIVE};
use super::run::{ExecOptions, ExecOutput, Members, Run};

/// What a new container looks like.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub image: String,
    pub platform: String,
    pub network: bool,
    pub user: Option<String>,
    /// Why it exists (`apt`, `sdist`, `verify`...), as a label.
    pub purpose: String,
}

impl ContainerSpec {
    /// A container of `image` for `platform`, run as root.
    pub fn root(
        image: impl Into<String>,
        platform: impl Into<String>,
        network: bool,
        purpose: &str,
    ) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            platform: platform.into(),
            network,
            user: Some("0".into()),
            purpose: purpose.into(),
        }
    }
}

impl Engine {
    /// Create and start a container that idles until removed, and that
    /// cannot outlive this process (see the module's documentation).
    pub async fn start(&self, spec: &ContainerSpec) -> Result<Container, DockerError> {
        self.start_with(spec, true).await
    }

    /// Start a container, run `work` with it, and remove it whatever the
    /// result. (A future dropped midway, on Ctrl-C, leaves it to the
    /// lifeline and [`remove_leftovers`].)
    pub async fn with_container<T, E>(
        &self,
        spec: &ContainerSpec,
        work: impl AsyncFnOnce(&Container) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DockerError>,
    {
        let c = self.start(spec).await?;
        let result = work(&c).await;
        c.remove().await;
        result
    }

    /// A container left running after this process ends (`verify --keep`):
    /// no lifetime guard, no auto-remove, no owner label.
    pub async fn start_kept(&self, spec: &ContainerSpec) -> Result<Container, DockerError> {
        self.start_with(spec, false).await
    }

    async fn start_with(
        &self,
        spec: &ContainerSpec,
        guarded: bool,
    ) -> Result<Container, DockerError> {
        let labels = labels(&spec.platform, &spec.purpose, guarded);
        let cmd: Vec<String> = if guarded {
            // Ends when the input closes: when this process lets go of it.
            vec!["sh".into(), "-c".into(), "read _ignored; exit 0".into()]
        } else {
            vec!["sleep".into(), "infinity".into()]
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(cmd),
            entrypoint: Some(Vec::new()),
            user: spec.user.clone(),
            labels: Some(labels),
            network_disabled: Some(!spec.network),
            open_stdin: Some(guarded),
            stdin_once: Some(guarded),
            attach_stdin: Some(guarded),
            host_config: Some(HostConfig {
                init: Some(true),
                auto_remove: Some(guarded),
                network_mode: Some(if spec.network { "bridge" } else { "none" }.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .create(body, &spec.platform)
            .await
            .map_err(api(format!("creating a container of {}", spec.image)))?;
        let mut container = Container {
            engine: self.clone(),
            id,
            image: spec.image.clone(),
            lifeline: Mutex::new(None),
        };
        if guarded {
            let attached = self
                .docker
                .attach_container(
                    &container.id,
                    Some(AttachContainerOptions {
                        stdin: true,
                        stream: true,
                        ..Default::default()
                    }),
                )
                .await;
            match attached {
                Ok(a) => container.lifeline = Mutex::new(Some(a)),
                Err(e) => {
                    container.remove().await;
                    return Err(api(format!("attaching to a container of {}", spec.image))(
                        e,
                    ));
                }
            }
        }
        if let Err(e) = self.docker.start_container(&container.id, None).await {
            container.remove().await;
            return Err(api(format!("starting a container of {}", spec.image))(e));
        }
        tracing::debug!(
            "started container {} of {}",
            container.short_id(),
            spec.image
        );
        Ok(container)
    }
}

/// A running container; remove it with [`Container::remove`]. Dropping it
/// without removing it also ends it: the daemon removes it once the
/// attachment held here closes.
pub struct Container {
    pub(super) engine: Engine,
    pub(super) id: String,
    pub(super) image: String,
    /// The attachment to the main process's input: the container lives as
    /// long as this is open.
    /// (In a mutex only to be shareable between threads; never locked.)
    pub(super) lifeline: Mutex<Option<bollard::container::AttachContainerResults>>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Container({} of {})", self.short_id(), self.image)
    }
}

impl Container {
    pub fn id(&self) -> &str {
        &self.id
    }

    fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    /// Run `script` with `sh -c` and collect its output.
    pub async fn exec(
        &self,
        script: &str,
        options: &ExecOptions,
    ) -> Result<ExecOutput, DockerError> {
        let docker = &self.engine.docker;
        let mut cmd: Vec<String> = Vec::new();
        if let Some(t) = options.timeout {
            cmd.extend([
                "timeout".into(),
                "-k".into(),
                "5".into(),
                format!("{}", t.as_secs().max(1)),
            ]);
        }
        cmd.extend(["sh".into(), "-c".into(), script.to_string()]);
        tracing::debug!("exec in {}: {script}", self.short_id());
        let started = Instant::now();
        let exec = docker
            .create_exec(
                &self.id,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd),
                    user: options.user.clone(),
                    working_dir: options.workdir.clone(),
                    env: (!options.env.is_empty()).then(|| options.env.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(api("creating an exec"))?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let results = docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(64 * 1024),
                }),
            )
            .await
            .map_err(api("starting an exec"))?;
        if let StartExecResults::Attached { mut output, .. } = results {
            // A backstop in case the command ignores `timeout`'s signals.
            let limit = options.timeout.map(|t| t + Duration::from_secs(15));
            let collect = async {
                while let Some(item) = output.next().await {
                    match item.map_err(api("reading exec output"))? {
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            stdout.extend_from_slice(&message)
                        }
                        LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                        LogOutput::StdIn { .. } => {}
                    }
                }
                Ok::<(), DockerError>(())
            };
            match limit {
                Some(l) => match tokio::time::timeout(l, collect).await {
                    Ok(r) => r?,
                    Err(_) => {
                        return Ok(ExecOutput {
                            code: 124,
                            stdout: String::from_utf8_lossy(&stdout).into_owned(),
                            stderr: String::from_utf8_lossy(&stderr).into_owned(),
                            elapsed: started.elapsed(),
                            timed_out: true,
                        })
                    }
                },
                None => collect.await?,
            }
        }
        let inspect = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(api("inspecting an exec"))?;
        let code = inspect.exit_code.unwrap_or(-1);
        Ok(ExecOutput {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed: started.elapsed(),
            timed_out: options.timeout.is_some() && code == 124,
        })
    }

    /// The tar archive of `path` (a file or a folder) in the container.
    async fn copy_out(&self, path: &str) -> Result<Vec<u8>, DockerError> {
        let mut stream = self.engine.docker.download_from_container(
            &self.id,
            Some(DownloadFromContainerOptions {
                path: path.to_string(),
            }),
        );
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar.extend_from_slice(&chunk.map_err(api(format!("copying {path} out")))?);
        }
        Ok(tar)
    }

    /// The members of `path` (a file or a folder), copied out: each one's
    /// path in the archive, and its bytes when it is a regular file.
    pub async fn copy_out_members(&self, path: &str) -> Result<Members, DockerError> {
        let tar = self.copy_out(path).await?;
        let bad = |e: std::io::Error| DockerError::Archive {
            path: path.to_string(),
            message: e.to_string(),
        };
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut members = Vec::new();
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let data = if entry.header().entry_type().is_file() {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(bad)?;
                Some(data)
            } else {
                None
            };
            members.push((name, data));
        }
        Ok(members)
    }

    /// Unpack the tar archive `tar` into folder `dir` of the container.
    pub async fn copy_in(&self, dir: &str, tar: Vec<u8>) -> Result<(), DockerError> {
        let once = futures_util::stream::once(std::future::ready(Ok(bytes::Bytes::from(tar))));
        self.upload(dir, once).await
    }

    /// Unpack the tar archive at `tar` into `dir`, streamed from disk in
    /// bounded chunks (an upload may be gigabytes).
    pub async fn copy_in_file(&self, dir: &str, tar: &std::path::Path) -> Result<(), DockerError> {
        use tokio::io::AsyncReadExt;
        let file = tokio::fs::File::open(tar)
            .await
            .map_err(|source| DockerError::Local {
                path: tar.to_path_buf(),
                source,
            })?;
        let chunks = futures_util::stream::unfold(file, |mut file| async move {
            let mut buf = vec![0u8; 256 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        });
        self.upload(dir, chunks).await
    }

    /// Send a tar stream to the archive endpoint, to unpack into `dir`.
    async fn upload(
        &self,
        dir: &str,
        tar: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), DockerError> {
        self.engine
            .docker
            .upload_to_container(
                &self.id,
                Some(UploadToContainerOptions {
                    path: dir.to_string(),
                    ..Default::default()
                }),
                bollard::body_try_stream(tar),
            )
            .await
            .map_err(api(format!("copying files into {dir}")))
    }

    /// Remove the container (forcibly). Errors are logged, not returned:
    /// this runs on failure paths too.
    pub async fn remove(&self) {
        let removed = force_remove(&self.engine.docker, &self.id).await;
        match removed {
            Ok(()) => {
                LIVE.lock().expect("poisoned").remove(&self.id);
            }
            Err(e) if not_found(&e) || removing(&e) => {
                LIVE.lock().expect("poisoned").remove(&self.id);
            }
            Err(e) => tracing::warn!("cannot remove container {}: {e}", self.short_id()),
        }
    }

    /// Leave the container running (for `--keep`): it is no longer removed
    /// by [`remove_leftovers`].
    pub fn keep(&self) {
        LIVE.lock().expect("poisoned").remove(&self.id);
    }
}

impl Run for Container {
    fn image(&self) -> &str {
        &self.image
    }

    fn exec(
        &self,
        script: &str,
        options: &ExecOptions,
    ) -> impl Future<Output = Result<ExecOutput, DockerError>> + Send {
        Container::exec(self, script, options)
    }

    fn copy_out_members(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Members, DockerError>> + Send {
        Container::copy_out_members(self, path)
    }

    fn copy_in(
        &self,
        dir: &str,
        tar: Vec<u8>,
    ) -> impl Future<Output = Result<(), DockerError>> + Send {
        Container::copy_in(self, dir, tar)
    }

    fn copy_in_file(
        &self,
        dir: &str,
        tar: &std::path::Path,
    ) -> impl Future<Output = Result<(), DockerError>> + Send {
        Container::copy_in_file(self, dir, tar)
    }
}
