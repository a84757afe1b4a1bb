//! How long and how much a transfer may take: the limits of the
//! environment, and the pace a body must keep while it is read.

use std::time::{Duration, Instant};

use reqwest::Response;

use super::error::FetchError;

/// How long and how much the client waits and takes. Each comes from an
/// environment variable (named on the field), else the default shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `BUNDLE_CONNECT_TIMEOUT`, seconds (10): one connection attempt.
    pub connect_timeout: Duration,
    /// `BUNDLE_HTTP_TIMEOUT`, seconds (30): the time a server has to answer,
    /// across all retries; also the longest silence inside a body, and the
    /// window over which `min_rate` is measured.
    pub timeout: Duration,
    /// `BUNDLE_HTTP_MIN_RATE`, bytes per second (1024): a body slower than
    /// this over a whole window is cut.
    pub min_rate: u64,
    /// `BUNDLE_MAX_PAGE_BYTES` (64 MiB): index pages, checksum files, API answers.
    pub max_page: u64,
    /// `BUNDLE_MAX_METADATA_BYTES` (16 MiB): PEP 658 metadata files.
    pub max_metadata: u64,
    /// `BUNDLE_MAX_FILE_BYTES` (4 GiB): a file whose size nobody declared.
    /// A file with a declared size (the index's `size`) may not exceed it.
    pub max_file: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            min_rate: 1024,
            max_page: 64 << 20,
            max_metadata: 16 << 20,
            max_file: 4 << 30,
        }
    }
}

fn env_number(name: &str) -> Option<f64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Some(n),
        _ => {
            tracing::warn!("ignoring {name}={v:?}: not a non-negative number");
            None
        }
    }
}

impl Limits {
    /// The defaults, overridden by the environment.
    pub fn from_env() -> Limits {
        let d = Limits::default();
        let secs = |name, default: Duration| {
            env_number(name)
                .map(|s| Duration::from_secs_f64(s.max(0.001)))
                .unwrap_or(default)
        };
        let bytes = |name, default: u64| env_number(name).map(|n| n as u64).unwrap_or(default);
        Limits {
            connect_timeout: secs("BUNDLE_CONNECT_TIMEOUT", d.connect_timeout),
            timeout: secs("BUNDLE_HTTP_TIMEOUT", d.timeout),
            min_rate: bytes("BUNDLE_HTTP_MIN_RATE", d.min_rate),
            max_page: bytes("BUNDLE_MAX_PAGE_BYTES", d.max_page),
            max_metadata: bytes("BUNDLE_MAX_METADATA_BYTES", d.max_metadata),
            max_file: bytes("BUNDLE_MAX_FILE_BYTES", d.max_file),
        }
    }
}

/// A body whose Content-Length is over `cap` is refused before it is read.
pub(super) fn refuse_declared_excess(
    url: &str,
    resp: &Response,
    cap: u64,
    what: &'static str,
) -> Result<(), FetchError> {
    match resp.content_length().filter(|l| *l > cap) {
        Some(len) => {
            tracing::debug!(url, len, cap, "refusing an oversized body");
            Err(FetchError::TooLarge {
                url: url.to_string(),
                limit: cap,
                what,
            })
        }
        None => Ok(()),
    }
}

/// Reads a body chunk by chunk under the limits: no silence longer than
/// the window, no window slower than the minimum rate, no more than `cap`.
pub(super) struct Pace<'a> {
    url: &'a str,
    limits: &'a Limits,
    cap: u64,
    what: &'static str,
    window_start: Instant,
    window_bytes: u64,
    total: u64,
}

impl<'a> Pace<'a> {
    pub(super) fn new(url: &'a str, limits: &'a Limits, cap: u64, what: &'static str) -> Pace<'a> {
        Pace {
            url,
            limits,
            cap,
            what,
            window_start: Instant::now(),
            window_bytes: 0,
            total: 0,
        }
    }

    pub(super) async fn next(
        &mut self,
        resp: &mut Response,
    ) -> Result<Option<bytes::Bytes>, FetchError> {
        let window = self.limits.timeout;
        loop {
            let left = window.saturating_sub(self.window_start.elapsed());
            match tokio::time::timeout(left, resp.chunk()).await {
                Ok(chunk) => {
                    let chunk = chunk.map_err(|source| FetchError::Http {
                        url: self.url.to_string(),
                        source,
                    })?;
                    let Some(chunk) = chunk else { return Ok(None) };
                    self.total += chunk.len() as u64;
                    self.window_bytes += chunk.len() as u64;
                    if self.total > self.cap {
                        return Err(FetchError::TooLarge {
                            url: self.url.to_string(),
                            limit: self.cap,
                            what: self.what,
                        });
                    }
                    if self.window_start.elapsed() >= window {
                        self.end_window()?;
                    }
                    return Ok(Some(chunk));
                }
                Err(_) => self.end_window()?,
            }
        }
    }

    fn end_window(&mut self) -> Result<(), FetchError> {
        let seconds = self.limits.timeout.as_secs_f64();
        if self.window_bytes == 0 {
            return Err(FetchError::Stalled {
                url: self.url.to_string(),
                seconds: seconds.ceil() as u64,
            });
        }
        if (self.window_bytes as f64) < self.limits.min_rate as f64 * seconds {
            return Err(FetchError::TooSlow {
                url: self.url.to_string(),
                bytes: self.window_bytes,
                seconds: seconds.ceil() as u64,
                min_rate: self.limits.min_rate,
            });
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
    }
}
