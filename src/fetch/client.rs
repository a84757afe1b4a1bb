//! One HTTP client for everything: timeouts, retries, size and rate limits,
//! streaming to disk while hashing, and the content-addressed cache.
//! Nothing unverified leaves here: cached files are checked before use.

use crate::error::Diagnose;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, ETAG, IF_NONE_MATCH, RANGE};
use reqwest::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::fetch::cache::{Cache, Lookup};
use crate::model::hash::{Hasher, Sha256};
use crate::report::Reporter;

const ATTEMPTS: u32 = 3;

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

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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
fn refuse_declared_excess(
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

#[derive(Serialize, Deserialize)]
struct PageMeta {
    url: String,
    etag: Option<String>,
    fetched: u64,
    max_age: Option<u64>,
}

/// An index page in the HTTP cache, one file: a first line naming the
/// format, the validators as one line of JSON, the body's sha256, then the
/// body. The body is checked against its sha256 on every read.
struct CachedPage {
    meta: PageMeta,
    sha256: Sha256,
    body: Vec<u8>,
}

const PAGE_FORMAT: &[u8] = b"bundle-page 1\n";

impl CachedPage {
    fn encode(meta: &PageMeta, sha256: &Sha256, body: &[u8]) -> Vec<u8> {
        let json = serde_json::to_vec(meta).expect("serializable");
        let mut out = Vec::with_capacity(PAGE_FORMAT.len() + json.len() + 66 + body.len());
        out.extend_from_slice(PAGE_FORMAT);
        out.extend_from_slice(&json);
        out.push(b'\n');
        out.extend_from_slice(sha256.as_str().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(body);
        out
    }

    /// The entry in `raw`, if it is one and its body is intact.
    fn parse(mut raw: Vec<u8>) -> Option<CachedPage> {
        let rest = raw.strip_prefix(PAGE_FORMAT)?;
        let json_end = rest.iter().position(|&b| b == b'\n')?;
        let meta: PageMeta = serde_json::from_slice(&rest[..json_end]).ok()?;
        let hex = rest.get(json_end + 1..json_end + 65)?;
        let sha256 = Sha256::parse(std::str::from_utf8(hex).ok()?).ok()?;
        if rest.get(json_end + 65) != Some(&b'\n') {
            return None;
        }
        let start = PAGE_FORMAT.len() + json_end + 66;
        let body = raw.split_off(start);
        (Sha256::of(&body) == sha256).then_some(CachedPage { meta, sha256, body })
    }
}

/// Reads a body chunk by chunk under the limits: no silence longer than
/// the window, no window slower than the minimum rate, no more than `cap`.
struct Pace<'a> {
    url: &'a str,
    limits: &'a Limits,
    cap: u64,
    what: &'static str,
    window_start: Instant,
    window_bytes: u64,
    total: u64,
}

impl<'a> Pace<'a> {
    fn new(url: &'a str, limits: &'a Limits, cap: u64, what: &'static str) -> Pace<'a> {
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

    async fn next(&mut self, resp: &mut Response) -> Result<Option<bytes::Bytes>, FetchError> {
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

/// An index page a run read: which, and the sha256 of the body it got.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageRead {
    pub url: String,
    pub accept: String,
    pub sha256: Sha256,
}

pub struct Fetcher {
    client: reqwest::Client,
    /// Every index page served so far, for memos of what was made from them.
    pages_read: std::sync::Mutex<Vec<PageRead>>,
    cache: Cache,
    offline: bool,
    refresh: bool,
    allow_unhashed: bool,
    /// Release URL prefixes and their mirrors, longest prefix first.
    mirrors: Vec<(String, String)>,
    limits: Limits,
    limit: Arc<Semaphore>,
    /// Bounds whole-file transfers (body included), for steady progress.
    transfers: Arc<Semaphore>,
    /// One lock per file (by sha256) being downloaded: a second request for
    /// it (the fetch stage, after the resolver fetched it ahead) waits for
    /// the first and then finds it in the cache.
    inflight: crate::per_key::PerKey<Sha256, tokio::sync::Mutex<()>>,
    next_id: AtomicU64,
    reporter: Arc<dyn Reporter>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Freshness for index pages whose server sends no Cache-Control:
/// `BUNDLE_INDEX_TTL` seconds, default 600 (what PyPI itself sends).
fn default_page_ttl() -> u64 {
    std::env::var("BUNDLE_INDEX_TTL")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(600)
}

fn max_age(headers: &HeaderMap) -> Option<u64> {
    let cc = headers.get(CACHE_CONTROL)?.to_str().ok()?;
    if cc.contains("no-store") || cc.contains("no-cache") {
        return Some(0);
    }
    cc.split(',')
        .filter_map(|p| p.trim().strip_prefix("max-age="))
        .find_map(|v| v.parse().ok())
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
    async fn send(&self, url: &str, headers: HeaderMap) -> Result<Response, FetchError> {
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
    async fn read_capped(
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

    /// GET an index page through the HTTP cache: fresh entries (per
    /// Cache-Control max-age) are used as they are, stale ones are
    /// revalidated with their ETag, and `--offline` uses whatever is cached.
    /// A cached body is checked against its own sha256; a damaged one is
    /// fetched again.
    pub async fn get_page(&self, url: &str, accept: &str) -> Result<Vec<u8>, FetchError> {
        let (body, sha256) = self.page(url, accept).await?;
        self.pages_read.lock().expect("poisoned").push(PageRead {
            url: url.to_string(),
            accept: accept.to_string(),
            sha256,
        });
        Ok(body)
    }

    /// The index pages served so far (in the order read; repeats possible).
    pub fn pages_read(&self) -> Vec<PageRead> {
        self.pages_read.lock().expect("poisoned").clone()
    }

    /// Whether `get_page` would serve `page` again from the cache, as it
    /// was, without asking the server: its entry is fresh (or `--offline`,
    /// and not `--refresh`) and its body, checked, is the one read.
    pub fn page_unchanged(&self, page: &PageRead) -> bool {
        let (_, cached) = self.cached_page(&page.url, &page.accept);
        cached.is_some_and(|c| self.serves_cached(&c.meta) && c.sha256 == page.sha256)
    }

    /// A page's entry in the HTTP cache: where it lives, and its validators
    /// with its body (checked) when the entry is there and sound.
    fn cached_page(&self, url: &str, accept: &str) -> (PathBuf, Option<CachedPage>) {
        let path = self
            .cache
            .keyed("http", &format!("{accept} {url}"), ".page");
        let cached = std::fs::read(&path)
            .ok()
            .and_then(CachedPage::parse)
            .filter(|c| c.meta.url == url);
        if cached.is_none() && path.exists() {
            // A damaged entry drops the validators too: the page comes whole.
            tracing::warn!("cached {} is corrupt; fetching it again", path.display());
            let _ = std::fs::remove_file(&path);
        }
        (path, cached)
    }

    /// Whether a cached page is served as it is, without asking the server:
    /// fresh and not `--refresh`, or `--offline`.
    fn serves_cached(&self, meta: &PageMeta) -> bool {
        let fresh = meta
            .max_age
            .is_some_and(|age| now().saturating_sub(meta.fetched) < age);
        self.offline || (fresh && !self.refresh)
    }

    /// A page's body and its sha256 (hashed once, as it arrives or as the
    /// cache entry is checked).
    async fn page(&self, url: &str, accept: &str) -> Result<(Vec<u8>, Sha256), FetchError> {
        let (path, cached) = self.cached_page(url, accept);
        let cached = match cached {
            Some(c) if self.serves_cached(&c.meta) => {
                tracing::debug!(url, "index page from cache");
                return Ok((c.body, c.sha256));
            }
            other => other,
        };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(accept).expect("valid accept"));
        if let Some(etag) = cached.as_ref().and_then(|c| c.meta.etag.as_deref()) {
            if let Ok(v) = HeaderValue::from_str(etag) {
                headers.insert(IF_NONE_MATCH, v);
            }
        }
        let resp = self.send(url, headers).await?;
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Without Cache-Control (some mirrors and proxies strip it), use
        // PyPI's own policy of ten minutes; `--refresh` bypasses it.
        let age = max_age(resp.headers()).or(Some(default_page_ttl()));
        let (body, sha256, old_etag) = match (resp.status() == StatusCode::NOT_MODIFIED, cached) {
            (true, Some(c)) => (c.body, c.sha256, c.meta.etag),
            (_, cached) => {
                let body = self
                    .read_capped(
                        url,
                        resp,
                        self.limits.max_page,
                        "pages: BUNDLE_MAX_PAGE_BYTES",
                    )
                    .await?;
                let sha256 = Sha256::of(&body);
                (body, sha256, cached.and_then(|c| c.meta.etag))
            }
        };
        let meta = PageMeta {
            url: url.to_string(),
            etag: etag.or(old_etag),
            fetched: now(),
            max_age: age,
        };
        self.cache
            .write_atomic(&path, &CachedPage::encode(&meta, &sha256, &body))
            .map_err(io_err(&path))?;
        Ok((body, sha256))
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

    /// The cached blob for a known sha256, verified; None when it is not
    /// there or was corrupt (and has been removed).
    pub fn cached_blob(&self, sha256: &Sha256) -> Result<Option<Blob>, FetchError> {
        let path = self.cache.blob(sha256);
        match self.cache.lookup(sha256).map_err(io_err(&path))? {
            Lookup::Verified { path, size } => Ok(Some(Blob {
                path,
                sha256: sha256.clone(),
                size,
            })),
            Lookup::Missing | Lookup::Corrupt { .. } => Ok(None),
        }
    }

    /// Download `url` into the cache, verifying `expected` sha256 when given
    /// and stopping at `size` bytes when the size is declared. A cached blob
    /// with that hash is checked and returned without touching the network;
    /// a corrupt one is removed and fetched again.
    pub async fn download(
        &self,
        url: &str,
        expected: Option<&Sha256>,
        size: Option<u64>,
        label: &str,
    ) -> Result<Blob, FetchError> {
        let one = expected.map(|h| self.inflight.get(h));
        let _only = match &one {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        if let Some(h) = expected {
            let path = self.cache.blob(h);
            match self.cache.lookup(h).map_err(io_err(&path))? {
                Lookup::Verified { path, size } => {
                    return Ok(Blob {
                        path,
                        sha256: h.clone(),
                        size,
                    })
                }
                Lookup::Corrupt { actual, .. } if self.offline => {
                    return Err(FetchError::CorruptOffline {
                        url: url.to_string(),
                        expected: h.to_string(),
                        actual: actual.to_string(),
                    })
                }
                Lookup::Corrupt { .. } | Lookup::Missing => {}
            }
        }
        if let Some(path) = super::local::file_path(url) {
            return self.store_local(url, path, expected, size).await;
        }
        let _transfer = self
            .transfers
            .acquire()
            .await
            .expect("semaphore never closed");
        let resp = self.send(url, HeaderMap::new()).await?;
        self.store_response(url, resp, expected, size, label).await
    }

    /// Stream a response to the cache while hashing; keep it only if it
    /// verifies. The body may not exceed `size` when given, else
    /// `BUNDLE_MAX_FILE_BYTES`.
    pub async fn store_response(
        &self,
        url: &str,
        mut resp: Response,
        expected: Option<&Sha256>,
        size: Option<u64>,
        label: &str,
    ) -> Result<Blob, FetchError> {
        let (cap, what) = match size {
            Some(s) => (s, "the size the index declares"),
            None => (
                self.limits.max_file,
                "files of undeclared size: BUNDLE_MAX_FILE_BYTES",
            ),
        };
        refuse_declared_excess(url, &resp, cap, what)?;
        let tmp_dir = self.cache.tmp_dir().map_err(io_err(self.cache.root()))?;
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err(&tmp_dir))?;
        let (std_file, tmp_path) = tmp.into_parts();
        // Written in place: a chunk into the page cache takes microseconds,
        // less than handing it to the blocking pool (which buffers up to
        // 2 MiB per file and spreads allocations over many threads).
        let mut file = std::io::BufWriter::with_capacity(256 * 1024, std_file);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.reporter
            .download_start(id, label, size.or(resp.content_length()));
        let mut hasher = Hasher::default();
        let result: Result<(), FetchError> = async {
            let mut pace = Pace::new(url, &self.limits, cap, what);
            while let Some(chunk) = pace.next(&mut resp).await? {
                hasher.update(&chunk);
                std::io::Write::write_all(&mut file, &chunk).map_err(io_err(&tmp_path))?;
                self.reporter.download_progress(id, chunk.len() as u64);
            }
            std::io::Write::flush(&mut file).map_err(io_err(&tmp_path))?;
            Ok(())
        }
        .await;
        self.reporter.download_done(id);
        result?;
        drop(file);
        let (actual, got) = hasher.finish();
        self.keep_verified(url, tmp_path, (actual, got), expected, size)
    }

    /// Keep a file written to this run's temporary folder as the blob of
    /// its hash, when it is what was `expected` (hash and size); else it is
    /// deleted and the mismatch returned.
    pub(super) fn keep_verified(
        &self,
        url: &str,
        tmp_path: tempfile::TempPath,
        (actual, got): (Sha256, u64),
        expected: Option<&Sha256>,
        size: Option<u64>,
    ) -> Result<Blob, FetchError> {
        if let Some(expected) = expected {
            if *expected != actual {
                // `tmp_path` is deleted on drop: nothing unverified is kept.
                return Err(FetchError::HashMismatch {
                    url: url.to_string(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        if let Some(declared) = size.filter(|s| *s != got) {
            return Err(FetchError::SizeMismatch {
                url: url.to_string(),
                declared,
                got,
            });
        }
        let dest = self.cache.blob(&actual);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        crate::fsutil::set_mode(&tmp_path, 0o644).map_err(io_err(&tmp_path))?;
        tmp_path.persist(&dest).map_err(|e| FetchError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        self.cache.written(&actual, &dest);
        Ok(Blob {
            path: dest,
            sha256: actual,
            size: got,
        })
    }
}

/// A reader of a verified blob that hashes what it reads and, at the end,
/// fails (`InvalidData`) unless the bytes were the blob's: for a consumer
/// that streams the file somewhere else in one pass.
pub fn verified_reader(blob: &Blob) -> std::io::Result<VerifiedReader> {
    Ok(VerifiedReader {
        inner: std::fs::File::open(&blob.path)?,
        hasher: Some(Hasher::default()),
        blob: blob.clone(),
    })
}

/// See [`verified_reader`].
pub struct VerifiedReader {
    inner: std::fs::File,
    hasher: Option<Hasher>,
    blob: Blob,
}

impl std::io::Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
        } else if !buf.is_empty() {
            if let Some((actual, _)) = self.hasher.take().map(Hasher::finish) {
                if actual != self.blob.sha256 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{} changed after it was verified (sha256 {actual}, expected {})",
                            self.blob.path.display(),
                            self.blob.sha256
                        ),
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// Copy a verified blob to `dest`, hashing the bytes as they are written:
/// the result is the digest of what `dest` holds. When that is not
/// `expected`, the blob changed after it was verified; `dest` is removed and
/// the cached blob too.
pub fn copy_verified(blob: &Blob, dest: &Path) -> Result<(Sha256, u64), FetchError> {
    let src = std::fs::File::open(&blob.path).map_err(io_err(&blob.path))?;
    let out = std::fs::File::create(dest).map_err(io_err(dest))?;
    let (actual, size) = Sha256::copy(src, out).map_err(io_err(dest))?;
    if actual != blob.sha256 {
        let _ = std::fs::remove_file(dest);
        let _ = std::fs::remove_file(&blob.path);
        return Err(FetchError::HashMismatch {
            url: blob.path.display().to_string(),
            expected: blob.sha256.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok((actual, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_cached_page_is_one_file_whose_body_is_checked() {
        let meta = PageMeta {
            url: "http://127.0.0.1:1/simple/a/".into(),
            etag: Some("\"e1\"".into()),
            fetched: 7,
            max_age: Some(600),
        };
        let body = br#"{"files": []}"#;
        let raw = CachedPage::encode(&meta, &Sha256::of(body), body);
        let page = CachedPage::parse(raw.clone()).expect("sound");
        assert_eq!(page.body, body);
        assert_eq!(page.sha256, Sha256::of(body));
        assert_eq!(page.meta.etag.as_deref(), Some("\"e1\""));
        assert_eq!((page.meta.fetched, page.meta.max_age), (7, Some(600)));
        // A changed byte of the body, a cut entry or another format: none.
        let mut flipped = raw.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(CachedPage::parse(flipped).is_none());
        assert!(CachedPage::parse(raw[..raw.len() - 1].to_vec()).is_none());
        assert!(CachedPage::parse(raw[..20].to_vec()).is_none());
        assert!(CachedPage::parse(b"bundle-page 2\n".to_vec()).is_none());
    }

    #[test]
    fn a_verified_reader_fails_at_the_end_when_the_bytes_changed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("blob");
        std::fs::write(&path, b"the verified bytes").unwrap();
        let blob = Blob {
            path: path.clone(),
            sha256: Sha256::of(b"the verified bytes"),
            size: 18,
        };
        let mut got = Vec::new();
        verified_reader(&blob)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, b"the verified bytes");
        std::fs::write(&path, b"the verified bytez").unwrap();
        let e = verified_reader(&blob)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            e.to_string().contains("changed after it was verified"),
            "{e}"
        );
    }
}
