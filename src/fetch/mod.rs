//! One HTTP client for everything, and the content-addressed cache that
//! trusts nothing it holds.

pub mod cache;
mod client;

pub use client::*;
