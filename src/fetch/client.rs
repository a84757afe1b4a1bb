//! The HTTP client: timeouts, retries, size and rate limits, for index
//! pages ([`super::pages`]), files ([`super::transfer`]) and small
//! documents. Nothing unverified leaves the fetch layer: cached files are
//! checked before use.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, RANGE};
use reqwest::{Response, StatusCode};
use tokio::sync::Semaphore;

use crate::fetch::cache::Cache;
use crate::model::hash::Sha256;
use crate::report::Reporter;

use super::error::FetchError;
use super::limits::{refuse_declared_excess, Limits, Pace};

const ATTEMPTS: u32 = 3;

/// An index page a run read: which, and the sha256 of the body it got.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageRead {
    pub url: String,
    pub accept: String,
    pub sha256: Sha256,
}

/// A verified file in the cache.
#[derive(Debug, Clone)]
pub struct Blob {
    pub path: PathBuf,
    pub sha256: Sha256,
    pub size: u64,
}

/// Result of a range request.
pub enum RangeReply {
    /// The server honoured the range: the bytes, and the whole file's length.
    Partial { bytes: Vec<u8>, total: Option<u64> },
    /// The server ignored the range and is sending the whole file.
    Whole(Response),
}

pub struct Fetcher {
    pub(super) client: reqwest::Client,
    /// Every index page served so far, for memos of what was made from them.
    pub(super) pages_read: std::sync::Mutex<Vec<PageRead>>,
    pub(super) cache: Cache,
    pub(super) offline: bool,
    pub(super) refresh: bool,
    pub(super) allow_unhashed: bool,
    /// Release URL prefixes and their mirrors, longest prefix first.
    pub(super) mirrors: Vec<(String, String)>,
    pub(super) limits: Limits,
    pub(super) limit: Arc<Semaphore>,
    /// Bounds whole-file transfers (body included), for steady progress.
    pub(super) transfers: Arc<Semaphore>,
    /// One lock per file (by sha256) being downloaded: a second request for
    /// it (the fetch stage, after the resolver fetched it ahead) waits for
    /// the first and then finds it in the cache.
    pub(super) inflight: crate::per_key::PerKey<Sha256, tokio::sync::Mutex<()>>,
    pub(super) next_id: AtomicU64,
    pub(super) reporter: Arc<dyn Reporter>,
}

/// File transfers in flight at once.
const TRANSFERS: usize = 8;

impl Fetcher {
    /// A client that trusts the operating system's certificate store (and
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`), with the limits of the environment.
    /// Temporary files left by killed runs are removed here.
    pub fn new(
        cache: Cache,
        offline: bool,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Fetcher, FetchError> {
        let limits = Limits::from_env();
        let client = reqwest::Client::builder()
            .user_agent(concat!("bundle/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.timeout)
            .pool_max_idle_per_host(16)
            .build()
            .map_err(FetchError::Client)?;
        let reaped = cache.reap();
        if reaped > 0 {
            tracing::info!("removed {reaped} temporary folder(s) left in the cache by killed runs");
        }
        Ok(Fetcher {
            client,
            pages_read: std::sync::Mutex::new(Vec::new()),
            cache,
            offline,
            refresh: false,
            allow_unhashed: false,
            mirrors: Vec::new(),
            limits,
            limit: Arc::new(Semaphore::new(16)),
            // Eight file transfers at a time: over HTTP/2 they share one
            // connection, and 4, 16 or 32 were no faster for the big set.
            transfers: Arc::new(Semaphore::new(TRANSFERS)),
            inflight: Default::default(),
            next_id: AtomicU64::new(1),
            reporter,
        })
    }

    /// Ignore cache freshness for index pages (still revalidated with ETags).
    pub fn with_refresh(mut self, refresh: bool) -> Self {
        self.refresh = refresh;
        self
    }

    /// Accept index files and releases that come without a sha256 (a
    /// policy the index and release planning read from here).
    pub fn with_allow_unhashed(mut self, allow: bool) -> Self {
        self.allow_unhashed = allow;
        self
    }

    pub fn allow_unhashed(&self) -> bool {
        self.allow_unhashed
    }

    /// Fetch release files from mirrors: each `(prefix, replacement)`
    /// rewrites URLs that start with `prefix` (the longest match wins).
    pub fn with_mirrors(mut self, mut mirrors: Vec<(String, String)>) -> Self {
        mirrors.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self.mirrors = mirrors;
        self
    }

    /// Where to fetch a release file from: its mirror, if one is set.
    /// Checksums apply as they do to the original URL.
    pub fn mirrored(&self, url: &str) -> String {
        for (prefix, to) in &self.mirrors {
            if let Some(rest) = url.strip_prefix(prefix.as_str()) {
                return format!("{to}{rest}");
            }
        }
        url.to_string()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn offline(&self) -> bool {
        self.offline
    }

    /// Whether cached pages and lists are to be fetched again (`--refresh`).
    pub fn refresh(&self) -> bool {
        self.refresh
    }

    /// GET with retries on connection failures and 5xx. The server has
    /// `limits.timeout` in all, across attempts, to send its headers.
    pub(super) async fn send(&self, url: &str, headers: HeaderMap) -> Result<Response, FetchError> {
        if self.offline {
            return Err(FetchError::Offline {
                url: url.to_string(),
            });
        }
        let _permit = self.limit.acquire().await.expect("semaphore never closed");
        let budget = self.limits.timeout;
        let deadline = Instant::now() + budget;
        let no_answer = || FetchError::NoAnswer {
            url: url.to_string(),
            seconds: budget.as_secs_f64().ceil() as u64,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            tracing::debug!(url, attempt, "GET");
            let left = deadline.saturating_duration_since(Instant::now());
            let request = self.client.get(url).headers(headers.clone()).send();
            let Ok(result) = tokio::time::timeout(left, request).await else {
                return Err(no_answer());
            };
            match result {
                Ok(resp) if resp.status().is_server_error() && attempt < ATTEMPTS => {
                    tracing::debug!(url, status = %resp.status(), "retrying");
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                    return Err(FetchError::NotFound {
                        url: url.to_string(),
                    })
                }
                Ok(resp)
                    if !(resp.status().is_success()
                        || resp.status() == StatusCode::NOT_MODIFIED) =>
                {
                    return Err(FetchError::Status {
                        url: url.to_string(),
                        status: resp.status().as_u16(),
                    })
                }
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_timeout() => return Err(no_answer()),
                Err(e) if attempt < ATTEMPTS && (e.is_connect() || e.is_request()) => {
                    tracing::debug!(url, error = %e, "retrying");
                }
                Err(source) => {
                    return Err(FetchError::Http {
                        url: url.to_string(),
                        source,
                    })
                }
            }
            let pause = Duration::from_millis(200 * (1 << attempt));
            if Instant::now() + pause >= deadline {
                return Err(no_answer());
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// The whole body, up to `cap` bytes, within the rate limits.
    pub(super) async fn read_capped(
        &self,
        url: &str,
        mut resp: Response,
        cap: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, FetchError> {
        refuse_declared_excess(url, &resp, cap, what)?;
        let mut pace = Pace::new(url, &self.limits, cap, what);
        let mut out = Vec::new();
        while let Some(chunk) = pace.next(&mut resp).await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// GET a small document (no caching), up to `BUNDLE_MAX_PAGE_BYTES`.
    pub async fn get(&self, url: &str, accept: Option<&str>) -> Result<Vec<u8>, FetchError> {
        self.get_with_token(url, accept, None).await
    }

    /// GET a PEP 658 metadata file, up to `BUNDLE_MAX_METADATA_BYTES`.
    pub async fn get_metadata(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let resp = self.send(url, HeaderMap::new()).await?;
        self.read_capped(
            url,
            resp,
            self.limits.max_metadata,
            "metadata files: BUNDLE_MAX_METADATA_BYTES",
        )
        .await
    }

    /// GET a small document, with a bearer token when given (API calls).
    pub async fn get_with_token(
        &self,
        url: &str,
        accept: Option<&str>,
        token: Option<&str>,
    ) -> Result<Vec<u8>, FetchError> {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(ACCEPT, HeaderValue::from_str(a).expect("valid accept"));
        }
        if let Some(v) = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let resp = self.send(url, headers).await?;
        self.read_capped(
            url,
            resp,
            self.limits.max_page,
            "pages: BUNDLE_MAX_PAGE_BYTES",
        )
        .await
    }

    /// Request a byte range (`bytes=-N` or `bytes=A-B`) of at most `cap` bytes.
    pub async fn get_range(
        &self,
        url: &str,
        range: &str,
        cap: u64,
    ) -> Result<RangeReply, FetchError> {
        let mut headers = HeaderMap::new();
        headers.insert(RANGE, HeaderValue::from_str(range).expect("valid range"));
        let resp = self.send(url, headers).await?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            return Ok(RangeReply::Whole(resp));
        }
        let total = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit('/').next())
            .and_then(|t| t.parse().ok());
        let bytes = self
            .read_capped(url, resp, cap, "a range larger than asked for")
            .await?;
        Ok(RangeReply::Partial { bytes, total })
    }
}
