//! The Docker engine ([`engine`]), where it is ([`endpoint`]) and how it is
//! reached (`connect`, `ssh`), and the target's images ([`sandbox`]).

mod connect;
pub mod endpoint;
mod engine;
#[cfg(test)]
pub mod fake;
pub mod sandbox;
mod ssh;
mod tls;
mod transport;

pub use connect::Unreached;
pub use engine::*;
