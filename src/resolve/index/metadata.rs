//! The core metadata of a wheel: a PEP 658 file, a small wheel read whole,
//! a range read of a big wheel's zip directory, or the wheel built from an
//! sdist; cached on disk, and checked against the file it describes.

use std::str::FromStr;
use std::sync::Arc;

use pep440_rs::Version;
use pep508_rs::{ExtraName, PackageName, Requirement, VerbatimUrl};

use crate::fetch::{FetchError, RangeReply};
use crate::model::hash::Sha256;
use crate::resolve::tags::WheelName;

use super::{Index, IndexError, Metadata, WheelFile, WHOLE_WHEEL_MAX};

impl Index {
    /// Core metadata of a wheel (memoized; cached on disk).
    pub async fn metadata(&self, wheel: &WheelFile) -> Result<Arc<Metadata>, Arc<IndexError>> {
        self.metadata
            .get(&wheel.url)
            .get_or_init(|| async {
                self.load_metadata(wheel)
                    .await
                    .map(Arc::new)
                    .map_err(Arc::new)
            })
            .await
            .clone()
    }

    async fn load_metadata(&self, wheel: &WheelFile) -> Result<Metadata, IndexError> {
        // (METADATA, the file it was read from, for errors)
        let (raw, file) = if wheel.sdist {
            let builder = self
                .sdists
                .as_ref()
                .ok_or_else(|| IndexError::BadMetadata {
                    file: wheel.filename.clone(),
                    message: "an sdist, and sdists are not built".into(),
                })?;
            let built = builder.build_wheel(&wheel.sdist_ref()).await?;
            let raw = metadata_from_wheel_file(&built.path).map_err(|message| {
                IndexError::BadMetadata {
                    file: built.filename.clone(),
                    message,
                }
            })?;
            (raw, built.filename)
        } else {
            let cache = self.fetcher.cache();
            let key = match &wheel.sha256 {
                Some(h) => h.to_string(),
                None => wheel.url.clone(),
            };
            let path = cache.keyed("metadata", &format!("v2 {key}"), ".METADATA");
            let raw = match cache.read_checked(&path) {
                Some(raw) => raw,
                None => {
                    let (raw, source) = self.fetch_metadata(wheel).await?;
                    // A wheel kept in the cache is its own metadata record:
                    // one file fewer to write (a big set has a hundred).
                    if source == MetadataSource::Remote {
                        if let Err(e) = cache.write_checked(&path, &raw) {
                            tracing::warn!("cannot cache metadata at {}: {e}", path.display());
                        }
                    }
                    raw
                }
            };
            (raw, wheel.filename.clone())
        };
        let meta = parse_metadata(&String::from_utf8_lossy(&raw)).map_err(|message| {
            IndexError::BadMetadata {
                file: file.clone(),
                message,
            }
        })?;
        check_identity(&meta, &file)?;
        Ok(meta)
    }

    /// PEP 658 file; else a small wheel whole; else a range read of the
    /// wheel's zip directory, else the whole wheel (kept in the cache: it is
    /// usually the one bundled).
    async fn fetch_metadata(
        &self,
        wheel: &WheelFile,
    ) -> Result<(Vec<u8>, MetadataSource), IndexError> {
        let bad = |message: String| IndexError::BadMetadata {
            file: wheel.filename.clone(),
            message,
        };
        // A wheel already in the cache needs no network at all.
        if let Some(h) = &wheel.sha256 {
            if let Some(blob) = self.fetcher.cached_blob(h)? {
                let raw = metadata_from_wheel_file(&blob.path).map_err(bad)?;
                return Ok((raw, MetadataSource::CachedWheel));
            }
        }
        if let Some(hash) = &wheel.core_metadata {
            let url = format!("{}.metadata", wheel.url);
            match self.fetcher.get_metadata(&url).await {
                Ok(bytes) => {
                    if let Some(expected) = hash {
                        let actual = Sha256::of(&bytes);
                        if actual != *expected {
                            return Err(FetchError::HashMismatch {
                                url,
                                expected: expected.to_string(),
                                actual: actual.to_string(),
                            }
                            .into());
                        }
                    }
                    return Ok((bytes, MetadataSource::Remote));
                }
                Err(FetchError::NotFound { .. }) => {
                    tracing::debug!("{url} advertised but missing; reading the wheel instead")
                }
                Err(e) => return Err(e.into()),
            }
        }
        // A small wheel is read whole: one request instead of two or three
        // range reads, and it is nearly always the file that is bundled
        // (the fetch stage then finds it in the cache).
        if let (Some(sha256), Some(size)) = (&wheel.sha256, wheel.size) {
            if size <= WHOLE_WHEEL_MAX {
                let blob = self
                    .fetcher
                    .download(&wheel.url, Some(sha256), Some(size), &wheel.filename)
                    .await?;
                let raw = metadata_from_wheel_file(&blob.path).map_err(bad)?;
                return Ok((raw, MetadataSource::CachedWheel));
            }
        }
        let whole = match self.metadata_by_range(wheel).await? {
            RangeOutcome::Found(bytes) => return Ok((bytes, MetadataSource::Remote)),
            RangeOutcome::Whole(resp) => {
                self.fetcher
                    .store_response(
                        &wheel.url,
                        resp,
                        wheel.sha256.as_ref(),
                        wheel.size,
                        &wheel.filename,
                    )
                    .await?
            }
            RangeOutcome::Unreadable => {
                self.fetcher
                    .download(
                        &wheel.url,
                        wheel.sha256.as_ref(),
                        wheel.size,
                        &wheel.filename,
                    )
                    .await?
            }
        };
        let raw = metadata_from_wheel_file(&whole.path).map_err(bad)?;
        Ok((raw, MetadataSource::CachedWheel))
    }

    /// METADATA from byte ranges of the wheel: its tail, its central
    /// directory, its local entry. Every offset comes from the remote file
    /// and is checked; anything odd falls back to reading the whole wheel.
    async fn metadata_by_range(&self, wheel: &WheelFile) -> Result<RangeOutcome, IndexError> {
        use crate::resolve::zipdir;
        const TAIL: u64 = 64 * 1024;
        let max_meta = self.fetcher.limits().max_metadata;
        let (tail, total) = match self
            .fetcher
            .get_range(&wheel.url, &format!("bytes=-{TAIL}"), TAIL)
            .await?
        {
            RangeReply::Whole(resp) => return Ok(RangeOutcome::Whole(resp)),
            RangeReply::Partial { bytes, total } => (bytes, total),
        };
        let Some(total) = total.or(wheel.size) else {
            return Ok(RangeOutcome::Unreadable);
        };
        let Some(tail_start) = total.checked_sub(tail.len() as u64) else {
            return Ok(RangeOutcome::Unreadable);
        };
        let Some(dir) = zipdir::find_central_directory(&tail, tail_start)
            .filter(|d| d.size > 0 && d.size <= max_meta)
            .filter(|d| d.offset.checked_add(d.size).is_some_and(|end| end <= total))
        else {
            return Ok(RangeOutcome::Unreadable);
        };
        let cd: Vec<u8> = match zipdir::slice_in(&tail, tail_start, dir.offset, dir.size) {
            Some(cd) => cd.to_vec(),
            None => match self
                .fetcher
                .get_range(
                    &wheel.url,
                    &format!("bytes={}-{}", dir.offset, dir.offset + dir.size - 1),
                    dir.size,
                )
                .await?
            {
                RangeReply::Partial { bytes, .. } => bytes,
                RangeReply::Whole(_) => return Ok(RangeOutcome::Unreadable),
            },
        };
        let Some(entry) = zipdir::find_metadata_entry(&cd)
            .filter(|e| e.compressed_size <= max_meta && e.uncompressed_size <= max_meta)
        else {
            return Ok(RangeOutcome::Unreadable);
        };
        // Local header (30 bytes) + name + extra (unknown until read) + data.
        let want = 30 + entry.name_len as u64 + 1024 + entry.compressed_size;
        let Some(end) = entry
            .header_offset
            .checked_add(want)
            .map(|e| e.min(total))
            .filter(|e| *e > entry.header_offset)
        else {
            return Ok(RangeOutcome::Unreadable);
        };
        let local = match self
            .fetcher
            .get_range(
                &wheel.url,
                &format!("bytes={}-{}", entry.header_offset, end - 1),
                end - entry.header_offset,
            )
            .await?
        {
            RangeReply::Partial { bytes, .. } => bytes,
            RangeReply::Whole(_) => return Ok(RangeOutcome::Unreadable),
        };
        match zipdir::read_local_entry(&local, &entry) {
            Some(bytes) => Ok(RangeOutcome::Found(bytes)),
            None => Ok(RangeOutcome::Unreadable),
        }
    }
}

/// The metadata names the project and version of the file it came from.
fn check_identity(meta: &Metadata, file: &str) -> Result<(), IndexError> {
    let Some(wheel) = WheelName::parse(file) else {
        return Ok(());
    };
    let mismatch = |field, found: &str, expected: &str| IndexError::MetadataMismatch {
        file: file.to_string(),
        field,
        found: found.to_string(),
        expected: expected.to_string(),
    };
    let norm = |n: &str| PackageName::from_str(n).map(|p| p.to_string()).ok();
    match &meta.name {
        Some(n) if norm(n).is_some() && norm(n) == norm(&wheel.name) => {}
        Some(n) => return Err(mismatch("Name", n, &wheel.name)),
        None => return Err(mismatch("Name", "(none)", &wheel.name)),
    }
    let same = |a: &str, b: &str| match (Version::from_str(a), Version::from_str(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    match &meta.version {
        Some(v) if same(v, &wheel.version) => Ok(()),
        Some(v) => Err(mismatch("Version", v, &wheel.version)),
        None => Err(mismatch("Version", "(none)", &wheel.version)),
    }
}

/// Where a wheel's metadata was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetadataSource {
    /// A PEP 658 file or byte ranges: worth keeping in the cache.
    Remote,
    /// The whole wheel, which the cache keeps.
    CachedWheel,
}

enum RangeOutcome {
    Found(Vec<u8>),
    Whole(reqwest::Response),
    Unreadable,
}

/// The projects a wheel on disk requires on a machine of `env`, without
/// extras (normalized names, sorted): what must be installed beside it.
pub fn base_requirements_of_wheel_file(
    path: &std::path::Path,
    env: &pep508_rs::MarkerEnvironment,
) -> Result<Vec<String>, String> {
    let data = metadata_from_wheel_file(path)?;
    let meta = parse_metadata(&String::from_utf8_lossy(&data))?;
    let names: std::collections::BTreeSet<String> = meta
        .requires_dist
        .iter()
        .filter(|r| r.evaluate_markers(env, &[]))
        .map(|r| r.name.to_string())
        .collect();
    Ok(names.into_iter().collect())
}

/// METADATA of a wheel on disk.
pub fn metadata_from_wheel_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use crate::archive::{self, ArchiveKind};
    let wanted =
        |p: &std::path::Path| crate::resolve::zipdir::is_metadata_path(&archive::slashed(p));
    archive::read_member(
        ArchiveKind::Zip,
        path,
        archive::Limits::from_env(),
        &wanted,
        16 << 20,
    )
    .map_err(|e| e.to_string())?
    .map(|(_, data)| data)
    .ok_or_else(|| "no *.dist-info/METADATA in the wheel".to_string())
}

/// Parse the email-header part of core metadata.
fn parse_metadata(text: &str) -> Result<Metadata, String> {
    let mut meta = Metadata::default();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    for (k, v) in headers {
        match k.as_str() {
            "requires-dist" => {
                let req = Requirement::<VerbatimUrl>::from_str(&v)
                    .map_err(|e| format!("Requires-Dist `{v}`: {e}"))?;
                meta.requires_dist.push(req);
            }
            "provides-extra" => {
                if let Ok(e) = ExtraName::from_str(&v) {
                    meta.provides_extra.push(e);
                }
            }
            "requires-python" => meta.requires_python = Some(v),
            "name" if meta.name.is_none() => meta.name = Some(v),
            "version" if meta.version.is_none() => meta.version = Some(v),
            _ => {}
        }
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_headers() {
        let m = parse_metadata(
            "Metadata-Version: 2.1\nName: x\nRequires-Dist: click\nRequires-Dist: importlib-resources;\n python_version < \"3.9\"\nProvides-Extra: test\nRequires-Dist: pytest; extra == 'test'\n\nRequires-Dist: not-a-header\n",
        )
        .unwrap();
        assert_eq!(m.requires_dist.len(), 3);
        assert_eq!(m.requires_dist[1].name.as_ref(), "importlib-resources");
        assert_eq!(m.provides_extra.len(), 1);
    }
}
