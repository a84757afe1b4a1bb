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
pub(super) async fn force_remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
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
