//! The nodes of the resolution graph and the version ranges between them:
//! what the solver works with and the conflict report explains.

use std::fmt;

use pep440_rs::Version;
use pep508_rs::{ExtraName, PackageName};
use pubgrub::Ranges;

/// A set of versions.
pub(crate) type Range = Ranges<Version>;

/// A node of the resolution graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pkg {
    Root,
    /// The target's preinstalled set.
    Target(String),
    Name(PackageName),
    Extra(PackageName, ExtraName),
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => write!(f, "your request"),
            Pkg::Target(t) => write!(f, "{t} (preinstalled)"),
            Pkg::Name(n) => write!(f, "{n}"),
            Pkg::Extra(n, e) => write!(f, "{n}[{e}]"),
        }
    }
}
