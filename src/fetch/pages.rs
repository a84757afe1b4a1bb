//! Index pages through an HTTP cache of their own: fresh entries are
//! served as they are, stale ones revalidated with their ETag, and each
//! body is checked against its sha256 before it is used.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::model::hash::Sha256;

use super::client::{Fetcher, PageRead};
use super::error::{io_err, FetchError};

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
