//! The Docker engine ([`engine`]) and the target's images ([`sandbox`]).

mod engine;
#[cfg(test)]
pub mod fake;
pub mod sandbox;

pub use engine::*;
