//! `bundle`: upload-ready bundles of third-party software for machines that
//! are not yours.
//!
//! The pipeline, one folder a stage, wired together in [`pipeline`]:
//!
//! ```text
//! config (recipe + target) ─▶ resolve ─▶ Plan ─▶ fetch ─▶ stage ─▶ check ─▶ assemble ─▶ bundle
//!                                                                                      └▶ verify
//! ```
//!
//! - [`model`]: the serialized contracts (Plan, manifest, digests);
//! - [`config`]: recipes and target profiles;
//! - [`resolve`]: the index seen through the target's tags, and PubGrub;
//! - [`fetch`]: the HTTP client and the cache;
//! - [`stage`]: releases, apt packages and sdists made into files;
//! - [`docker`]: the engine and the target's images;
//! - [`check`]: the ELF check; [`assemble`]: manifest, installer, archives;
//! - [`verify`]: the bundle run in the target's sandbox.
//!
//! Library code never prints: progress goes through [`report::Reporter`].

pub mod archive;
pub mod assemble;
pub mod check;
pub mod config;
pub mod docker;
pub mod error;
pub mod fetch;
pub mod fsutil;
pub mod model;
pub mod per_key;
pub mod pipeline;
pub mod report;
pub mod resolve;
pub mod stage;
pub mod verify;

pub use error::Diagnose;

use config::{recipe, target};

use stage::{apt, release};

/// Any failure of a `bundle` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Recipe(#[from] recipe::RecipeError),
    #[error(transparent)]
    Requirements(#[from] config::requirements::RequirementsError),
    #[error(transparent)]
    Target(#[from] target::TargetError),
    #[error(transparent)]
    Plan(#[from] pipeline::PlanError),
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error(transparent)]
    Release(#[from] release::ReleaseError),
    #[error(transparent)]
    Check(#[from] check::CheckError),
    #[error(transparent)]
    Assemble(#[from] assemble::AssembleError),
    #[error(transparent)]
    Docker(#[from] docker::DockerError),
    #[error(transparent)]
    Apt(#[from] apt::AptError),
    #[error(transparent)]
    Verify(#[from] verify::VerifyError),
    #[error(transparent)]
    Sdist(#[from] stage::sdist::SdistError),
    #[error(transparent)]
    Build(#[from] stage::build::BuildError),
    #[error(transparent)]
    Npm(#[from] stage::npm::NpmStageError),
    #[error("{0}")]
    Usage(String),
    /// The pipeline's own file work: staging, lock files, the cache folder.
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Stopped by a signal (SIGINT, SIGTERM, SIGHUP); the exit code is 128
    /// plus its number, as shells report it.
    #[error("interrupted by {name}")]
    Interrupted { name: &'static str, number: i32 },
}

impl Error {
    /// The error of the stage that failed (None for usage and signals).
    fn stage(&self) -> Option<&dyn Diagnose> {
        Some(match self {
            Error::Recipe(e) => e,
            Error::Requirements(e) => e,
            Error::Target(e) => e,
            Error::Plan(e) => e,
            Error::Fetch(e) => e,
            Error::Release(e) => e,
            Error::Check(e) => e,
            Error::Assemble(e) => e,
            Error::Docker(e) => e,
            Error::Apt(e) => e,
            Error::Verify(e) => e,
            Error::Sdist(e) => e,
            Error::Build(e) => e,
            Error::Npm(e) => e,
            Error::Usage(_) | Error::Interrupted { .. } | Error::Io { .. } => return None,
        })
    }
}

impl Error {
    /// A stable name for the kind of error, for scripts (`--json`'s
    /// `error.kind`): the stage that failed, or `usage`, `io`, `interrupted`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Recipe(
                config::recipe::RecipeError::BadRequirement { .. }
                | config::recipe::RecipeError::NotAProject { .. },
            ) => "requirement",
            Error::Recipe(_) => "recipe",
            Error::Requirements(_) => "requirements",
            Error::Target(_) => "target",
            Error::Plan(pipeline::PlanError::Release { .. }) => "release",
            Error::Plan(pipeline::PlanError::Build { .. }) => "build",
            Error::Plan(pipeline::PlanError::Npm(_)) => "npm",
            Error::Plan(_) => "resolve",
            Error::Fetch(_) => "fetch",
            Error::Release(_) => "release",
            Error::Check(_) => "check",
            Error::Assemble(_) => "assemble",
            Error::Docker(_) => "docker",
            Error::Apt(_) => "apt",
            Error::Verify(_) => "verify",
            Error::Sdist(_) => "sdist",
            Error::Build(_) => "build",
            Error::Npm(_) => "npm",
            Error::Usage(_) => "usage",
            Error::Io { .. } => "io",
            Error::Interrupted { .. } => "interrupted",
        }
    }
}

impl Diagnose for Error {
    /// 0 ok; 1 the work failed; 2 bad usage or input; 128 + n for signal n.
    fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => error::BAD_INPUT,
            Error::Interrupted { number, .. } => 128 + number,
            Error::Io { .. } => error::WORK_FAILED,
            _ => self.stage().map_or(error::WORK_FAILED, |e| e.exit_code()),
        }
    }

    fn hint(&self) -> Option<String> {
        self.stage().and_then(|e| e.hint())
    }
}
