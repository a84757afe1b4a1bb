//! One HTTP client for everything, and the content-addressed cache that
//! trusts nothing it holds.

pub mod cache;
mod client;
mod error;
mod integrity;
mod limits;
mod pages;
mod transfer;

pub use client::{Blob, Fetcher, PageRead, RangeReply};
pub use error::FetchError;
pub use limits::Limits;
pub use transfer::{copy_verified, verified_reader, VerifiedReader};
