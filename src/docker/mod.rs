//! The Docker engine: where it is ([`endpoint`]) and how it is reached
//! (`connect`, `ssh`, `tls`, `transport`); connecting (`engine`); the
//! containers it runs for `bundle` (`container`, `run`), which cannot
//! outlive this process (`lifetime`); images (`images`), and the target's
//! own sandbox and build images ([`sandbox`]).

mod connect;
mod container;
pub mod endpoint;
mod engine;
mod error;
#[cfg(test)]
pub mod fake;
mod images;
mod lifetime;
mod run;
pub mod sandbox;
mod ssh;
mod tls;
mod transport;

pub use connect::Unreached;
pub use container::*;
pub use engine::*;
pub use error::*;
pub use images::*;
pub use lifetime::*;
pub use run::*;
