//! Files pinned by a Subresource Integrity value (npm's tarballs) into the
//! sha256-addressed cache: the download is checked against the integrity
//! before it is used, and the cache remembers which blob an integrity
//! value names, so that later runs take the blob (checked by its sha256)
//! without the network.

use crate::model::integrity::Integrity;
use crate::model::Sha256;

use super::client::{Blob, Fetcher};
use super::error::{io_err, FetchError};

impl Fetcher {
    /// Download `url`, which must have `integrity`. A blob that an earlier
    /// run verified against the same value is taken from the cache; a file
    /// that does not match is removed and the mismatch returned.
    pub async fn download_integrity(
        &self,
        url: &str,
        integrity: &Integrity,
        label: &str,
    ) -> Result<Blob, FetchError> {
        let key = self.cache().keyed("sri", &integrity.to_string(), ".sha256");
        let known = self
            .cache()
            .read_checked(&key)
            .and_then(|b| Sha256::parse(String::from_utf8_lossy(&b).trim()).ok());
        if let Some(sha) = known {
            if let Some(blob) = self.cached_blob(&sha)? {
                return Ok(blob);
            }
            // Known but gone: the download below must be that very file.
            return self.download(url, Some(&sha), None, label).await;
        }
        let blob = self.download(url, None, None, label).await?;
        let (path, algorithm) = (blob.path.clone(), integrity.algorithm());
        let actual = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&path)
                .and_then(|f| Integrity::of_reader(algorithm, std::io::BufReader::new(f)))
        })
        .await
        .expect("hash task panicked")
        .map_err(io_err(&blob.path))?;
        if actual != *integrity {
            // Nothing unverified stays: the blob was stored under its own
            // sha256 only, which nothing else names.
            let _ = std::fs::remove_file(&blob.path);
            return Err(FetchError::IntegrityMismatch {
                url: url.to_string(),
                expected: integrity.to_string(),
                actual: actual.to_string(),
            });
        }
        if let Err(e) = self
            .cache()
            .write_checked(&key, blob.sha256.as_str().as_bytes())
        {
            tracing::warn!("cannot record {} in the cache: {e}", key.display());
        }
        Ok(blob)
    }
}
