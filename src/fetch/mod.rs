//! One HTTP client for everything, and the content-addressed cache that
//! trusts nothing it holds.

pub mod cache;
mod client;
mod local;

pub use client::*;
