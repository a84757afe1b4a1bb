//! One HTTP client for everything: timeouts, retries, streaming to disk while
//! hashing, and the content-addressed cache. Nothing unverified leaves here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, ETAG, IF_NONE_MATCH, RANGE};
use reqwest::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::cache::{hex, Cache};
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
    #[error("cache I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl FetchError {
    pub fn hint(&self) -> Option<String> {
        match self {
            FetchError::Http { .. } => Some(
                "check the network and the URL (for the package index: --index-url or PIP_INDEX_URL); behind a TLS-intercepting proxy, point SSL_CERT_FILE at its CA".into(),
            ),
            FetchError::HashMismatch { .. } => Some(
                "the file changed or was tampered with; nothing was kept. If the new file is expected, update the pinned hash".into(),
            ),
            FetchError::Offline { .. } => {
                Some("run once without --offline to fill the cache".into())
            }
            FetchError::Status { status, .. } if *status >= 500 => {
                Some("the server failed; try again later".into())
            }
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A verified file in the cache.
#[derive(Debug, Clone)]
pub struct Blob {
    pub path: PathBuf,
    pub sha256: String,
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

pub struct Fetcher {
    client: reqwest::Client,
    cache: Cache,
    offline: bool,
    refresh: bool,
    limit: Arc<Semaphore>,
    /// Bounds whole-file transfers (body included), for steady progress.
    transfers: Arc<Semaphore>,
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

impl Fetcher {
    /// A client that trusts the operating system's certificate store (and
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`), with timeouts.
    pub fn new(
        cache: Cache,
        offline: bool,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("bundle/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(16)
            .build()
            .map_err(FetchError::Client)?;
        Ok(Fetcher {
            client,
            cache,
            offline,
            refresh: false,
            limit: Arc::new(Semaphore::new(16)),
            transfers: Arc::new(Semaphore::new(8)),
            next_id: AtomicU64::new(1),
            reporter,
        })
    }

    /// Ignore cache freshness for index pages (still revalidated with ETags).
    pub fn with_refresh(mut self, refresh: bool) -> Self {
        self.refresh = refresh;
        self
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn offline(&self) -> bool {
        self.offline
    }

    pub fn reporter(&self) -> &Arc<dyn Reporter> {
        &self.reporter
    }

    /// GET with retries on connection failures, timeouts and 5xx.
    async fn send(&self, url: &str, headers: HeaderMap) -> Result<Response, FetchError> {
        if self.offline {
            return Err(FetchError::Offline {
                url: url.to_string(),
            });
        }
        let _permit = self.limit.acquire().await.expect("semaphore never closed");
        let mut attempt = 0;
        loop {
            attempt += 1;
            tracing::debug!(url, attempt, "GET");
            let result = self.client.get(url).headers(headers.clone()).send().await;
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
                Err(e)
                    if attempt < ATTEMPTS
                        && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    tracing::debug!(url, error = %e, "retrying");
                }
                Err(source) => {
                    return Err(FetchError::Http {
                        url: url.to_string(),
                        source,
                    })
                }
            }
            tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
        }
    }

    async fn read_all(url: &str, resp: Response) -> Result<Vec<u8>, FetchError> {
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|source| FetchError::Http {
                url: url.to_string(),
                source,
            })
    }

    /// GET a small document (no caching).
    pub async fn get(&self, url: &str, accept: Option<&str>) -> Result<Vec<u8>, FetchError> {
        self.get_with_token(url, accept, None).await
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
        Self::read_all(url, resp).await
    }

    /// GET an index page through the HTTP cache: fresh entries (per
    /// Cache-Control max-age) are used as they are, stale ones are
    /// revalidated with their ETag, and `--offline` uses whatever is cached.
    /// Returns the body and its final content type.
    pub async fn get_page(&self, url: &str, accept: &str) -> Result<Vec<u8>, FetchError> {
        let meta_path = self
            .cache
            .keyed("http", &format!("{accept} {url}"), ".json");
        let body_path = meta_path.with_extension("body");
        let cached: Option<PageMeta> = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|m: &PageMeta| m.url == url && body_path.is_file());
        if let Some(meta) = &cached {
            let fresh = meta
                .max_age
                .is_some_and(|age| now().saturating_sub(meta.fetched) < age);
            if self.offline || (fresh && !self.refresh) {
                if let Ok(body) = std::fs::read(&body_path) {
                    tracing::debug!(url, "index page from cache");
                    return Ok(body);
                }
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(accept).expect("valid accept"));
        if let Some(etag) = cached.as_ref().and_then(|m| m.etag.as_deref()) {
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
        let body = if resp.status() == StatusCode::NOT_MODIFIED {
            std::fs::read(&body_path).map_err(io_err(&body_path))?
        } else {
            let body = Self::read_all(url, resp).await?;
            self.cache
                .write_atomic(&body_path, &body)
                .map_err(io_err(&body_path))?;
            body
        };
        let meta = PageMeta {
            url: url.to_string(),
            etag: etag.or_else(|| cached.and_then(|m| m.etag)),
            fetched: now(),
            max_age: age,
        };
        let json = serde_json::to_vec(&meta).expect("serializable");
        self.cache
            .write_atomic(&meta_path, &json)
            .map_err(io_err(&meta_path))?;
        Ok(body)
    }

    /// Request a byte range (`bytes=-N` or `bytes=A-B`).
    pub async fn get_range(&self, url: &str, range: &str) -> Result<RangeReply, FetchError> {
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
        let bytes = Self::read_all(url, resp).await?;
        Ok(RangeReply::Partial { bytes, total })
    }

    /// The cached blob for a known sha256, if present.
    pub fn cached_blob(&self, sha256: &str) -> Option<Blob> {
        let path = self.cache.blob(sha256);
        let size = std::fs::metadata(&path).ok()?.len();
        Some(Blob {
            path,
            sha256: sha256.to_string(),
            size,
        })
    }

    /// Download `url` into the cache, verifying `expected` sha256 when given.
    /// A cached blob with that hash is returned without touching the network.
    pub async fn download(
        &self,
        url: &str,
        expected: Option<&str>,
        label: &str,
    ) -> Result<Blob, FetchError> {
        if let Some(blob) = expected.and_then(|h| self.cached_blob(h)) {
            return Ok(blob);
        }
        let _transfer = self
            .transfers
            .acquire()
            .await
            .expect("semaphore never closed");
        let resp = self.send(url, HeaderMap::new()).await?;
        self.store_response(url, resp, expected, label).await
    }

    /// Stream a response to the cache while hashing; keep it only if it verifies.
    pub async fn store_response(
        &self,
        url: &str,
        mut resp: Response,
        expected: Option<&str>,
        label: &str,
    ) -> Result<Blob, FetchError> {
        let tmp_dir = self.cache.tmp_dir().map_err(io_err(self.cache.root()))?;
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err(&tmp_dir))?;
        let (std_file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(std_file);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.reporter
            .download_start(id, label, resp.content_length());
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let result: Result<(), FetchError> = async {
            while let Some(chunk) = resp.chunk().await.map_err(|source| FetchError::Http {
                url: url.to_string(),
                source,
            })? {
                hasher.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(io_err(&tmp_path))?;
                self.reporter.download_progress(id, chunk.len() as u64);
            }
            file.flush().await.map_err(io_err(&tmp_path))?;
            Ok(())
        }
        .await;
        self.reporter.download_done(id);
        result?;
        drop(file);
        let actual = hex(&hasher.finalize());
        if let Some(expected) = expected {
            if !expected.eq_ignore_ascii_case(&actual) {
                // `tmp_path` is deleted on drop: nothing unverified is kept.
                return Err(FetchError::HashMismatch {
                    url: url.to_string(),
                    expected: expected.to_string(),
                    actual,
                });
            }
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
        Ok(Blob {
            path: dest,
            sha256: actual,
            size,
        })
    }
}
