//! What can go wrong fetching, with hints.

use crate::error::Diagnose;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot reach {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} did not answer within {seconds} s")]
    NoAnswer { url: String, seconds: u64 },
    #[error("{url} sent nothing for {seconds} s")]
    Stalled { url: String, seconds: u64 },
    #[error(
        "{url} is too slow: {bytes} bytes in {seconds} s, below the minimum of {min_rate} bytes/s"
    )]
    TooSlow {
        url: String,
        bytes: u64,
        seconds: u64,
        min_rate: u64,
    },
    #[error("{url} sent more than {limit} bytes ({what}); the transfer was stopped")]
    TooLarge {
        url: String,
        limit: u64,
        what: &'static str,
    },
    #[error("{url} sent {got} bytes, but its size is given as {declared}")]
    SizeMismatch {
        url: String,
        declared: u64,
        got: u64,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} was not found (HTTP 404)")]
    NotFound { url: String },
    #[error("sha256 mismatch for {url}: expected {expected}, got {actual}")]
    HashMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("integrity mismatch for {url}: the registry gives {expected}, the file has {actual}")]
    IntegrityMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url} is not in the cache and --offline forbids the network")]
    Offline { url: String },
    #[error("the cached copy of {url} is corrupt (sha256 {actual}, expected {expected}); it was removed, and --offline forbids fetching it again")]
    CorruptOffline {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cache I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl Diagnose for FetchError {
    fn hint(&self) -> Option<String> {
        match self {
            FetchError::Http { .. } => Some(
                "check the network and the URL (for the package index: --index-url or PIP_INDEX_URL); behind a TLS-intercepting proxy, point SSL_CERT_FILE at its CA".into(),
            ),
            FetchError::NoAnswer { .. } | FetchError::Stalled { .. } | FetchError::TooSlow { .. } => Some(
                "the server is down or overloaded; try again later, or raise BUNDLE_HTTP_TIMEOUT (seconds) / lower BUNDLE_HTTP_MIN_RATE (bytes/s)".into(),
            ),
            FetchError::TooLarge { what, .. } => Some(format!(
                "nothing was kept; if the file really is that large, raise the limit for {what} (see the README's Reliability section)"
            )),
            FetchError::HashMismatch { .. } => Some(
                "the file changed or was tampered with; nothing was kept. If the new file is expected, update the pinned hash".into(),
            ),
            FetchError::IntegrityMismatch { .. } => Some(
                "the tarball is not the one the registry published (a broken mirror or proxy, or tampering); nothing was kept or written".into(),
            ),
            FetchError::Offline { .. } | FetchError::CorruptOffline { .. } => {
                Some("run once without --offline to fill the cache".into())
            }
            FetchError::Status { status, .. } if *status >= 500 => {
                Some("the server failed; try again later".into())
            }
            _ => None,
        }
    }
}

/// An I/O error at `path`, as a FetchError.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}
