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
pub mod fetch;
pub mod fsutil;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod resolve;
pub mod stage;
pub mod verify;

use config::{recipe, target};
use resolve::index;
use stage::{apt, release};

/// Any failure of a `bundle` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Recipe(#[from] recipe::RecipeError),
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
    #[error("{0}")]
    Usage(String),
    /// Stopped by a signal (SIGINT, SIGTERM, SIGHUP); the exit code is 128
    /// plus its number, as shells report it.
    #[error("interrupted by {name}")]
    Interrupted { name: &'static str, number: i32 },
}

impl Error {
    /// 0 ok; 1 the work failed; 2 bad usage or input; 130 interrupted.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Recipe(_) | Error::Target(_) | Error::Usage(_) => 2,
            Error::Release(e) if e.is_bad_input() => 2,
            Error::Plan(pipeline::PlanError::Release(e)) if e.is_bad_input() => 2,
            Error::Plan(pipeline::PlanError::Resolve(resolve::ResolveError::Unsupported(_))) => 2,
            Error::Plan(pipeline::PlanError::Index(index::IndexError::BadIndexUrl(_))) => 2,
            Error::Interrupted { number, .. } => 128 + number,
            Error::Plan(pipeline::PlanError::Resolve(resolve::ResolveError::Cancelled)) => 130,
            _ => 1,
        }
    }

    /// A suggestion for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Recipe(e) => e.hint(),
            Error::Target(e) => e.hint(),
            Error::Plan(e) => e.hint(),
            Error::Fetch(e) => e.hint(),
            Error::Release(e) => e.hint(),
            Error::Check(e) => e.hint(),
            Error::Assemble(e) => e.hint(),
            Error::Docker(e) => e.hint(),
            Error::Apt(e) => e.hint(),
            Error::Verify(e) => e.hint(),
            Error::Sdist(e) => e.hint(),
            Error::Usage(_) | Error::Interrupted { .. } => None,
        }
    }
}
