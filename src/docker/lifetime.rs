//! Every container `bundle` starts carries the label `bundle`, the target
//! platform and its owner (this boot of this machine, and this process), and
//! cannot outlive that owner:
//! - its main process, under an init, waits on its standard input, to which
//!   `bundle` stays attached; it is created with auto-remove. When `bundle`
//!   ends in any way, SIGKILL included, the kernel closes the attach
//!   connection, the daemon closes the container's input, the main process
//!   exits, and the daemon removes the container;
//! - it is recorded in a process-wide list until removed: [`remove_leftovers`]
//!   removes whatever is still there, on every exit path of the CLI, and
//!   looks for a container whose create was cut short by its owner label;
//!   a removal the daemon already has in hand is waited for;
//! - on connecting, [`super::Engine::connect`] removes containers whose owner
//!   on this machine is no longer alive (a daemon that missed the close).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bollard::query_parameters::RemoveContainerOptions;
use bollard::Docker;

/// Label put on every container and image `bundle` creates.
pub const LABEL: &str = "bundle";

/// Label naming the platform a container was created for.
pub const LABEL_PLATFORM: &str = "bundle.platform";

/// Label naming the process that owns a container: `<boot id>/<pid>/<start>`.
pub const LABEL_OWNER: &str = "bundle.owner";

/// This process, as named in [`LABEL_OWNER`]: the machine's boot id, the
/// pid, and the process's start time (which tells a reused pid apart).
pub(super) fn owner_id() -> String {
    owner_of(std::process::id()).unwrap_or_else(|| format!("unknown/{}/0", std::process::id()))
}

pub(super) fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The owner id process `pid` would have now, if it is alive.
pub(super) fn owner_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (start time) counts from after the command name's `)`.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{}/{pid}/{start}", boot_id()?))
}

/// Whether the owner named by a label is gone. Owners on other machines (or
/// other boots) cannot be judged, and count as alive.
pub(super) fn owner_gone(label: &str) -> bool {
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
pub(super) fn extra_labels() -> Vec<(String, String)> {
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
pub(super) fn labels(platform: &str, purpose: &str, owned: bool) -> HashMap<String, String> {
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

/// Containers started and not yet removed: id → client.
pub(super) static LIVE: Mutex<BTreeMap<String, Docker>> = Mutex::new(BTreeMap::new());

/// Engines on which a container create was cut short (its future dropped
/// by Ctrl-C or SIGTERM before the daemon answered).
static CUT_SHORT: Mutex<Vec<Docker>> = Mutex::new(Vec::new());

/// A container create in flight: dropped before [`Creating::finished`],
/// it records its engine in [`CUT_SHORT`].
pub(super) struct Creating {
    docker: Option<Docker>,
}

impl Creating {
    pub(super) fn new(docker: &Docker) -> Creating {
        Creating {
            docker: Some(docker.clone()),
        }
    }

    /// The daemon answered (with an id or an error).
    pub(super) fn finished(&mut self) {
        self.docker = None;
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        if let Some(d) = self.docker.take() {
            CUT_SHORT.lock().expect("poisoned").push(d);
        }
    }
}

/// How long [`remove_leftovers`] looks for containers whose create was cut
/// short, which the daemon may still be making.
const CUT_SHORT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Remove every container this process started and has not removed yet,
/// and those whose create was cut short (found by this process's owner
/// label, for a few seconds while the daemon may still be making them).
/// Returns how many there were.
pub async fn remove_leftovers() -> usize {
    let live: Vec<(String, Docker)> = std::mem::take(&mut *LIVE.lock().expect("poisoned"))
        .into_iter()
        .collect();
    let mut n = live.len();
    for (id, docker) in live {
        let _ = force_remove(&docker, &id).await;
    }
    let cut = std::mem::take(&mut *CUT_SHORT.lock().expect("poisoned"));
    if cut.is_empty() {
        return n;
    }
    let mut filters = HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![format!("{LABEL_OWNER}={}", owner_id())],
    );
    let started = std::time::Instant::now();
    let mut found = 0;
    while found < cut.len() && started.elapsed() < CUT_SHORT_WAIT {
        for docker in &cut {
            let options = bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            };
            for c in docker
                .list_containers(Some(options))
                .await
                .unwrap_or_default()
            {
                if let Some(id) = c.id {
                    if force_remove(docker, &id).await.is_ok() {
                        found += 1;
                    }
                }
            }
        }
        if found < cut.len() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    n += found;
    n
}

/// Remove a container, running or not, with its anonymous volumes. When
/// the daemon is already removing it (auto-remove, after its input
/// closed), wait, a few seconds at most, until it is gone: the caller
/// means "gone" when this returns.
pub(super) async fn force_remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let removed = docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await;
    match removed {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            let started = std::time::Instant::now();
            while started.elapsed() < std::time::Duration::from_secs(5) {
                match docker.inspect_container(id, None).await {
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => return Ok(()),
                    _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
            removed
        }
        other => other,
    }
}
