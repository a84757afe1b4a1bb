//! The content-addressed download cache.
//!
//! Layout under the root:
//! - `blobs/sha256/<aa>/<hash>`: verified files, named by their sha256;
//! - `http/<key>.json` + `http/<key>.body`: index pages with their validators;
//! - `metadata/<key>`: wheel METADATA extracted from wheels or PEP 658 files;
//! - `tmp/`: partial downloads, renamed into `blobs/` only after verification.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Root of the cache: `BUNDLE_CACHE_DIR`, else `$XDG_CACHE_HOME/bundle`,
/// else `~/.cache/bundle`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BUNDLE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("bundle");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".cache").join("bundle");
    }
    std::env::temp_dir().join("bundle-cache")
}

/// Lowercase hex sha256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// Size and entry count of the cache.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CacheInfo {
    pub files: u64,
    pub bytes: u64,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a verified blob with this sha256 lives.
    pub fn blob(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("00");
        self.root
            .join("blobs")
            .join("sha256")
            .join(prefix)
            .join(sha256)
    }

    pub fn tmp_dir(&self) -> std::io::Result<PathBuf> {
        let d = self.root.join("tmp");
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    /// Path for cached data of `kind` under a key derived from `id`.
    pub fn keyed(&self, kind: &str, id: &str, ext: &str) -> PathBuf {
        self.root
            .join(kind)
            .join(format!("{}{ext}", &sha256_hex(id.as_bytes())[..32]))
    }

    /// Write `data` to `path` atomically (temporary file + rename).
    pub fn write_atomic(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, data)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    pub fn info(&self) -> CacheInfo {
        fn walk(p: &Path, info: &mut CacheInfo) {
            let Ok(rd) = std::fs::read_dir(p) else { return };
            for e in rd.flatten() {
                let Ok(md) = e.metadata() else { continue };
                if md.is_dir() {
                    walk(&e.path(), info);
                } else {
                    info.files += 1;
                    info.bytes += md.len();
                }
            }
        }
        let mut info = CacheInfo::default();
        walk(&self.root, &mut info);
        info
    }

    /// Remove everything in the cache.
    pub fn clean(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
