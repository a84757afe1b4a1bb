//! What can go wrong with the engine, with hints.

use crate::error::Diagnose;

use super::connect::Unreached;
use super::endpoint::{Endpoint, EndpointError};

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

pub(super) fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let action = action.into();
    move |source| DockerError::Api { action, source }
}

/// The daemon is removing it already (auto-remove).
pub(super) fn removing(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

pub(super) fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
