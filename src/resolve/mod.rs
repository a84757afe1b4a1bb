//! Resolution for the target machine: the PEP 691 index seen through the
//! target's wheel tags ([`index`], [`tags`]), METADATA read from byte ranges
//! of zip directories ([`zipdir`]), and PubGrub over all of it.

pub mod builder;
mod error;
mod graph;
pub mod index;
pub mod memo;
pub mod npm;
mod preinstalled;
mod report;
mod solver;
pub mod tags;
pub mod zipdir;

pub use builder::{BuildError, BuiltWheel, SdistRef, WheelBuilder};
pub use preinstalled::preinstalled_closure;
pub use solver::*;
