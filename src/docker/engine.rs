//! The Docker engine, through its API (bollard): images, containers, exec,
//! and files in and out through the archive endpoint.
//!
//! Every container `bundle` starts carries the label `bundle`, the target
//! platform and its owner (this boot of this machine, and this process), and
//! cannot outlive that owner:
//! - its main process, under an init, waits on its standard input, to which
//!   `bundle` stays attached; it is created with auto-remove. When `bundle`
//!   ends in any way, SIGKILL included, the kernel closes the attach
//!   connection, the daemon closes the container's input, the main process
//!   exits, and the daemon removes the container;
//! - it is recorded in a process-wide list until removed: [`remove_leftovers`]
//!   removes whatever is still there, on every exit path of the CLI;
//! - on connecting, [`Engine::connect`] removes containers whose owner on
//!   this machine is no longer alive (a daemon that missed the close).

use crate::error::Diagnose;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerConfig, ContainerCreateBody, ExecConfig, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CommitContainerOptions, CreateContainerOptions, CreateImageOptions,
    DownloadFromContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    UploadToContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::report::{Reporter, Step};

use super::connect::Unreached;
use super::endpoint::{Endpoint, EndpointError};

/// Label put on every container and image `bundle` creates.
pub const LABEL: &str = "bundle";
/// Label naming the platform a container was created for.
pub const LABEL_PLATFORM: &str = "bundle.platform";
/// Label naming the process that owns a container: `<boot id>/<pid>/<start>`.
pub const LABEL_OWNER: &str = "bundle.owner";

/// This process, as named in [`LABEL_OWNER`]: the machine's boot id, the
/// pid, and the process's start time (which tells a reused pid apart).
fn owner_id() -> String {
    owner_of(std::process::id()).unwrap_or_else(|| format!("unknown/{}/0", std::process::id()))
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The owner id process `pid` would have now, if it is alive.
fn owner_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (start time) counts from after the command name's `)`.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{}/{pid}/{start}", boot_id()?))
}

/// Whether the owner named by a label is gone. Owners on other machines (or
/// other boots) cannot be judged, and count as alive.
fn owner_gone(label: &str) -> bool {
    let mut parts = label.split('/');
    let (Some(boot), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if Some(boot.to_string()) != boot_id() {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    owner_of(pid).as_deref() != Some(label)
}

/// Extra labels from `BUNDLE_DOCKER_LABELS` (`key=value,key2=value2`), for
/// telling containers of one CI job or test apart.
fn extra_labels() -> Vec<(String, String)> {
    std::env::var("BUNDLE_DOCKER_LABELS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The labels of a container `bundle` creates: [`LABEL`], the platform, its
/// purpose, `BUNDLE_DOCKER_LABELS`, and when `owned` this process as owner.
fn labels(platform: &str, purpose: &str, owned: bool) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    labels.insert(LABEL.to_string(), env!("CARGO_PKG_VERSION").to_string());
    labels.insert(LABEL_PLATFORM.to_string(), platform.to_string());
    labels.insert("bundle.purpose".to_string(), purpose.to_string());
    labels.extend(extra_labels());
    if owned {
        labels.insert(LABEL_OWNER.to_string(), owner_id());
    }
    labels
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("{needs} Docker, and the engine at {endpoint} {}", .cause.text())]
    Unreachable {
        needs: String,
        /// The endpoint and what named it.
        endpoint: Box<Endpoint>,
        cause: Box<Unreached>,
        #[source]
        source: Option<bollard::errors::Error>,
    },
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("the engine runs {engine} programs and cannot run {platform} ones: a {platform} container of {image} did not start ({detail})")]
    PlatformUnsupported {
        platform: String,
        engine: String,
        image: String,
        detail: String,
    },
    #[error("image {image} is not present locally and pulling it failed")]
    Pull {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("docker: {action}")]
    Api {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{what} failed (exit code {code}) in {image}:\n{output}")]
    Failed {
        what: String,
        image: String,
        code: i64,
        output: String,
    },
    #[error("{what} did not finish within {seconds} s in {image}")]
    TimedOut {
        what: String,
        image: String,
        seconds: u64,
    },
    #[error("the pull of {image} finished, but the daemon does not have it")]
    PulledButMissing { image: String },
    #[error("reading {path} from the container: {message}")]
    Archive { path: String, message: String },
    #[error("reading {path} to copy it into the container")]
    Local {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for DockerError {
    fn hint(&self) -> Option<String> {
        match self {
            DockerError::Unreachable {
                endpoint, cause, ..
            } => Some(cause.hint(endpoint)),
            DockerError::Endpoint(e) => e.hint(),
            DockerError::PlatformUnsupported { platform, .. } => Some(format!(
                "register an emulator for {platform} on the engine's host: qemu-user-static in binfmt_misc with the F flag (on Debian and Ubuntu, `apt-get install qemu-user-static`; or `docker run --privileged --rm tonistiigi/binfmt --install all`), or point DOCKER_HOST at an engine of that architecture"
            )),
            DockerError::Pull { image, .. } => Some(format!(
                "the daemon could not pull it (no registry reachable, or no such image): build or load {image} locally (`docker import`, `docker load`), or use a target whose image `docker images` lists"
            )),
            DockerError::Failed { .. } => {
                Some("the output above is the command's own; run with -v for every step".into())
            }
            _ => None,
        }
    }

    fn exit_code(&self) -> i32 {
        match self {
            DockerError::Endpoint(e) => e.exit_code(),
            _ => crate::error::WORK_FAILED,
        }
    }
}

/// The output of a command run in a container.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl ExecOutput {
    /// Standard output then standard error, trimmed, for messages.
    pub fn combined(&self) -> String {
        let mut s = self.stdout.trim_end().to_string();
        let e = self.stderr.trim_end();
        if !e.is_empty() {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(e);
        }
        s
    }
}

/// How to run one command.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub env: Vec<String>,
    /// Enforced inside the container with coreutils `timeout`.
    pub timeout: Option<Duration>,
}

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

/// Containers started and not yet removed: id → client.
static LIVE: Mutex<BTreeMap<String, Docker>> = Mutex::new(BTreeMap::new());

/// Remove every container this process started and has not removed yet.
/// Returns how many there were.
pub async fn remove_leftovers() -> usize {
    let live: Vec<(String, Docker)> = std::mem::take(&mut *LIVE.lock().expect("poisoned"))
        .into_iter()
        .collect();
    let n = live.len();
    for (id, docker) in live {
        let _ = force_remove(&docker, &id).await;
    }
    n
}

/// Remove a container, running or not, with its anonymous volumes.
async fn force_remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
}

/// A connection to a Docker daemon.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    version: String,
    /// Platforms this engine was seen to run.
    platforms: std::sync::Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine(API {})", self.version)
    }
}

fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let action = action.into();
    move |source| DockerError::Api { action, source }
}

/// The daemon is removing it already (auto-remove).
fn removing(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
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

    /// The image's id, or None when it is not present locally.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspecting image {image}"))(e)),
        }
    }

    /// Create a container for `platform`, recorded in the process-wide
    /// list until removed. Returns its id.
    async fn create(
        &self,
        body: ContainerCreateBody,
        platform: &str,
    ) -> Result<String, bollard::errors::Error> {
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: None,
                    platform: platform.to_string(),
                }),
                body,
            )
            .await?;
        LIVE.lock()
            .expect("poisoned")
            .insert(created.id.clone(), self.docker.clone());
        Ok(created.id)
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

/// `uname -m` of a Docker platform's programs.
pub fn uname_machine(platform: &str) -> Option<&'static str> {
    match platform {
        "linux/amd64" => Some("x86_64"),
        "linux/arm64" | "linux/arm64/v8" => Some("aarch64"),
        _ => None,
    }
}

fn split_tag(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// A running container; remove it with [`Container::remove`]. Dropping it
/// without removing it also ends it: the daemon removes it once the
/// attachment held here closes.
pub struct Container {
    engine: Engine,
    id: String,
    image: String,
    /// The attachment to the main process's input: the container lives as
    /// long as this is open.
    /// (In a mutex only to be shareable between threads; never locked.)
    lifeline: Mutex<Option<bollard::container::AttachContainerResults>>,
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

/// Files copied out of a container: each one's path in the archive, and
/// its bytes when it is a regular file.
pub type Members = Vec<(String, Option<Vec<u8>>)>;

/// What the stages need of a running container: run a command, copy files
/// in and out. [`Container`] is the real one; unit tests script a fake, so
/// that apt's and verify's steps are tested without a daemon.
pub trait Run: Sync {
    /// The image it runs, for messages.
    fn image(&self) -> &str;

    /// Run `script` with `sh -c` and collect its output.
    fn exec(
        &self,
        script: &str,
        options: &ExecOptions,
    ) -> impl Future<Output = Result<ExecOutput, DockerError>> + Send;

    /// The members of `path` (a file or a folder), copied out: each one's
    /// path in the archive, and its bytes when it is a regular file.
    fn copy_out_members(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Members, DockerError>> + Send;

    /// Unpack the tar archive `tar` into folder `dir`.
    fn copy_in(
        &self,
        dir: &str,
        tar: Vec<u8>,
    ) -> impl Future<Output = Result<(), DockerError>> + Send;

    /// Unpack the tar archive at `tar` (on the host) into `dir`, streamed.
    fn copy_in_file(
        &self,
        dir: &str,
        tar: &std::path::Path,
    ) -> impl Future<Output = Result<(), DockerError>> + Send;

    /// Run `script`; a non-zero exit is an error naming `what` with the output.
    fn run_ok(
        &self,
        script: &str,
        what: &str,
        options: &ExecOptions,
    ) -> impl Future<Output = Result<ExecOutput, DockerError>> + Send {
        async move {
            let out = self.exec(script, options).await?;
            if out.timed_out {
                return Err(DockerError::TimedOut {
                    what: what.to_string(),
                    image: self.image().to_string(),
                    seconds: options.timeout.map(|t| t.as_secs()).unwrap_or(0),
                });
            }
            if out.code != 0 {
                return Err(DockerError::Failed {
                    what: what.to_string(),
                    image: self.image().to_string(),
                    code: out.code,
                    output: tail(&out.combined(), 40),
                });
            }
            Ok(out)
        }
    }

    /// The bytes of one regular file.
    fn read_file(&self, path: &str) -> impl Future<Output = Result<Vec<u8>, DockerError>> + Send {
        async move {
            let bad = |message: &str| DockerError::Archive {
                path: path.to_string(),
                message: message.to_string(),
            };
            match self.copy_out_members(path).await?.into_iter().next() {
                Some((_, Some(data))) => Ok(data),
                Some((_, None)) => Err(bad("not a regular file")),
                None => Err(bad("empty archive")),
            }
        }
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

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines]\n"));
    }
    out.push_str(&lines[start..].join("\n"));
    out
}

pub use crate::model::sh_quote;

/// A tar archive holding `files` (path → (mode, bytes)), for [`Container::copy_in`].
pub fn tar_of(files: &[(String, u32, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let members: Vec<(&str, u32, u64)> = files
        .iter()
        .map(|(path, mode, data)| (path.as_str(), *mode, data.len() as u64))
        .collect();
    write_tar(Vec::new(), &members, (0, 0), |i| Ok(files[i].2.as_slice()))
}

/// Write a tar for the archive endpoint into `out`: each member (path,
/// mode, size), its bytes read from `open(index)` when it is written (one
/// open file at a time), owned by `(uid, gid)`, after the folders that
/// hold them, owned alike (else the daemon makes them root's).
pub fn write_tar<W: std::io::Write, R: std::io::Read>(
    out: W,
    members: &[(&str, u32, u64)],
    owner: (u64, u64),
    mut open: impl FnMut(usize) -> std::io::Result<R>,
) -> std::io::Result<W> {
    let mut b = tar::Builder::new(out);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h
    };
    let mut dirs = std::collections::BTreeSet::new();
    for (path, ..) in members {
        let mut p = std::path::Path::new(path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    for d in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())?;
    }
    for (i, (path, mode, size)) in members.iter().enumerate() {
        let mut h = header(tar::EntryType::Regular, *mode, *size);
        b.append_data(&mut h, path, open(i)?)?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("lua5.3"), "lua5.3");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn image_tags() {
        assert_eq!(split_tag("ubuntu:20.04"), ("ubuntu", "20.04"));
        assert_eq!(split_tag("ubuntu"), ("ubuntu", "latest"));
        assert_eq!(
            split_tag("localhost:5000/x/y"),
            ("localhost:5000/x/y", "latest")
        );
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\nb\nc", 2), "[... 1 earlier lines]\nb\nc");
        assert_eq!(tail("a", 2), "a");
    }
}
