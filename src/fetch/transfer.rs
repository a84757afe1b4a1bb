//! Files into the content-addressed cache: downloaded (or copied, for a
//! `file://` URL) while hashing, kept only when they verify, and read back
//! with their hash checked again.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use reqwest::header::HeaderMap;
use reqwest::Response;

use crate::fetch::cache::Lookup;
use crate::model::hash::{Hasher, Sha256};

use super::client::{Blob, Fetcher};
use super::error::{io_err, FetchError};
use super::limits::{refuse_declared_excess, Pace};

impl Fetcher {
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
        if let Some(path) = file_path(url) {
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
    fn keep_verified(
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

/// The local path a `file://` URL names, if it is one.
pub fn file_path(url: &str) -> Option<PathBuf> {
    let parsed = reqwest::Url::parse(url).ok()?;
    (parsed.scheme() == "file")
        .then(|| parsed.to_file_path().ok())
        .flatten()
}

impl Fetcher {
    /// Copy the file at `path` into the cache, hashing it; keep it only if
    /// it matches `expected` and `size`. Bounded memory whatever its size.
    async fn store_local(
        &self,
        url: &str,
        path: PathBuf,
        expected: Option<&Sha256>,
        size: Option<u64>,
    ) -> Result<Blob, FetchError> {
        let tmp_dir = self
            .cache()
            .tmp_dir()
            .map_err(io_err(self.cache().root()))?;
        let (limit, what) = match size {
            Some(s) => (s, "the size the file had when it was named"),
            None => (
                self.limits().max_file,
                "files of undeclared size: BUNDLE_MAX_FILE_BYTES",
            ),
        };
        let url_owned = url.to_string();
        let copied = tokio::task::spawn_blocking(move || {
            let missing = |e: std::io::Error| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    FetchError::NotFound {
                        url: url_owned.clone(),
                    }
                } else {
                    io_err(&path)(e)
                }
            };
            let from = std::fs::File::open(&path).map_err(missing)?;
            let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err(&tmp_dir))?;
            let (file, tmp_path) = tmp.into_parts();
            let to = std::io::BufWriter::with_capacity(256 * 1024, file);
            // One byte past the limit tells a file that is over it.
            let (sha256, got) =
                Sha256::copy(from.take(limit.saturating_add(1)), to).map_err(io_err(&path))?;
            if got > limit {
                return Err(FetchError::TooLarge {
                    url: url_owned.clone(),
                    limit,
                    what,
                });
            }
            Ok((tmp_path, (sha256, got)))
        })
        .await
        .expect("copying a local file does not panic")?;
        let (tmp_path, hashed) = copied;
        self.keep_verified(url, tmp_path, hashed, expected, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
