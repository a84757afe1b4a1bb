//! What can go wrong resolving, with hints.

use std::sync::Arc;

use crate::error::Diagnose;
use crate::resolve::index::IndexError;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no set of wheels satisfies the requirements for target {target}:\n{report}")]
    NoSolution {
        target: String,
        report: String,
        preinstalled_conflict: bool,
    },
    #[error(transparent)]
    Index(Arc<IndexError>),
    /// Bad input: a requirement this tool cannot satisfy (exit 2).
    #[error("{0}")]
    Unsupported(String),
    /// The index's data cannot be used (exit 1).
    #[error("{0}")]
    Failed(String),
    /// The request contradicts itself: two of its requirements (or one and
    /// a -c constraint) allow no common version.
    #[error("{0}")]
    Conflict(String),
    #[error("interrupted")]
    Cancelled,
}

impl Diagnose for ResolveError {
    fn exit_code(&self) -> i32 {
        match self {
            ResolveError::Unsupported(_) => crate::error::BAD_INPUT,
            ResolveError::Cancelled => crate::error::INTERRUPTED,
            ResolveError::Index(e) => e.exit_code(),
            _ => crate::error::WORK_FAILED,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ResolveError::NoSolution {
                preinstalled_conflict: true,
                ..
            } => Some(
                "a package preinstalled on the target is too old or too new; pass --upgrade-preinstalled to bundle another version of it, or relax the requirement".into(),
            ),
            ResolveError::NoSolution { .. } => Some(
                "relax a version constraint, or choose a target with another Python (--target)".into(),
            ),
            ResolveError::Index(e) => e.hint(),
            ResolveError::Conflict(_) => Some(
                "drop one of them, or relax one so that a version fits both".into(),
            ),
            ResolveError::Unsupported(_) | ResolveError::Failed(_) => None,
            ResolveError::Cancelled => None,
        }
    }
}
