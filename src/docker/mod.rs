//! The Docker engine ([`engine`]) and the target's images ([`sandbox`]).

mod engine;
pub mod sandbox;

pub use engine::*;
