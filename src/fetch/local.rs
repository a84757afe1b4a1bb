//! Files named by `file://` URLs (a requirement `name @ file:///path`):
//! copied into the cache while hashing, and held to the same checks as a
//! download.

use std::io::Read;
use std::path::PathBuf;

use crate::model::hash::{Hasher, Sha256};

use super::client::{io_err, Blob, FetchError, Fetcher};

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
    pub(super) async fn store_local(
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
        let limit = size.unwrap_or(self.limits().max_file);
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
            let mut from = std::fs::File::open(&path).map_err(missing)?;
            let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io_err(&tmp_dir))?;
            let (file, tmp_path) = tmp.into_parts();
            let mut to = std::io::BufWriter::with_capacity(256 * 1024, file);
            let mut hasher = Hasher::default();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                let n = from.read(&mut buf).map_err(io_err(&path))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > limit {
                    return Err(FetchError::TooLarge {
                        url: url_owned.clone(),
                        limit,
                        what: "files of undeclared size: BUNDLE_MAX_FILE_BYTES",
                    });
                }
                hasher.update(&buf[..n]);
                std::io::Write::write_all(&mut to, &buf[..n]).map_err(io_err(&tmp_path))?;
            }
            std::io::Write::flush(&mut to).map_err(io_err(&tmp_path))?;
            Ok((tmp_path, hasher.finish()))
        })
        .await
        .expect("copying a local file does not panic")?;
        let (tmp_path, hashed) = copied;
        self.keep_verified(url, tmp_path, hashed, expected, size)
    }
}
