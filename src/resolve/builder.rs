//! How the resolver reaches a build backend without depending on one, as
//! uv's `BuildContext` does: it sees this trait, the sdist stage implements
//! it, and the pipeline hands one to the index.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use crate::model::Sha256;

/// An sdist chosen by the resolver.
#[derive(Debug, Clone)]
pub struct SdistRef {
    pub filename: String,
    pub url: String,
    pub sha256: Option<Sha256>,
}

/// A wheel built from an sdist, in the cache.
#[derive(Debug, Clone)]
pub struct BuiltWheel {
    pub filename: String,
    pub path: PathBuf,
    pub sha256: Sha256,
    pub size: u64,
    /// The verified sdist's sha256.
    pub sdist_sha256: Sha256,
}

/// Why a wheel could not be built: the builder's own error, kept whole as
/// the cause, and its hint.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct BuildError {
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
    pub hint: Option<String>,
}

/// The future a [`WheelBuilder`] returns.
pub type BuildFuture<'a> =
    Pin<Box<dyn Future<Output = Result<BuiltWheel, BuildError>> + Send + 'a>>;

/// Turns sdists into wheels for the target (for their metadata, and for the
/// bundle). Each sdist is built at most once per run.
pub trait WheelBuilder: Send + Sync {
    fn build_wheel<'a>(&'a self, sdist: &'a SdistRef) -> BuildFuture<'a>;
}
