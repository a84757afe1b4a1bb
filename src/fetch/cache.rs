//! The content-addressed download cache, which trusts nothing it holds.
//!
//! Layout under the root:
//! - `blobs/sha256/<aa>/<hash>`: files, named by their sha256. A blob is
//!   hashed again before each use unless its stamp (`<hash>.stamp`: size,
//!   mtime, ctime, inode) still matches the file: any write to a file
//!   changes its ctime, which no program can set back. A stamp is only
//!   written for a file whose ctime is older than [`STAMP_MIN_AGE`], so a
//!   change in the same clock tick as the stamp cannot hide. Within one
//!   run, a blob the run itself wrote or hashed is not hashed again while
//!   its stamp holds (kept in memory, never on disk).
//! - `http/<key>.page`: index pages, each with its validators and its
//!   body's sha256 (checked on every read);
//! - `metadata/<key>`, `elf/<key>`: derived data, stored with its own sha256
//!   and checked on every read; a corrupt entry is dropped and made again;
//! - `tmp/run-*/`: this run's partial downloads and temporary files, in a
//!   folder locked by the run; the next run removes what a killed run left.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::fsutil::RunDir;
use crate::model::Sha256;

/// Stamps are written only for files whose ctime is at least this old.
pub const STAMP_MIN_AGE: Duration = Duration::from_secs(2);

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

/// Lowercase hex sha256 of bytes (for cache keys and image tags).
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::of(data).to_string()
}

pub use crate::model::hash::hex;

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    run: Arc<OnceLock<RunDir>>,
    /// Blobs this run wrote or hashed, with their stamps at that moment.
    known: Arc<Mutex<HashMap<Sha256, Stamp>>>,
}

/// Size and entry count of the cache.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct CacheInfo {
    pub files: u64,
    pub bytes: u64,
}

/// A blob looked up in the cache.
#[derive(Debug)]
pub enum Lookup {
    /// Present, and its bytes hash to the name.
    Verified { path: PathBuf, size: u64 },
    /// Not there.
    Missing,
    /// There, but its bytes hash to something else: it has been removed.
    Corrupt { actual: Sha256, size: u64 },
}

/// What changes whenever a file's content does: size, mtime, ctime (which
/// no one can set back) and inode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    size: u64,
    mtime: i128,
    ctime: i128,
    ino: u64,
}

impl Stamp {
    pub fn of(md: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            size: md.len(),
            mtime: md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128,
            ctime: md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128,
            ino: md.ino(),
        }
    }
    fn text(&self) -> String {
        format!("{} {} {} {}\n", self.size, self.mtime, self.ctime, self.ino)
    }
    fn parse(s: &str) -> Option<Stamp> {
        let mut it = s.split_whitespace();
        Some(Stamp {
            size: it.next()?.parse().ok()?,
            mtime: it.next()?.parse().ok()?,
            ctime: it.next()?.parse().ok()?,
            ino: it.next()?.parse().ok()?,
        })
    }
    /// The file last changed long enough ago for the stamp to be trusted.
    fn settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        now - self.ctime >= STAMP_MIN_AGE.as_nanos() as i128
    }
}

/// Prefix of the checked format: `bundle-sha256:<hex>\n` then the data.
const CHECKED: &str = "bundle-sha256:";

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache {
            root: root.into(),
            run: Arc::new(OnceLock::new()),
            known: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob with this sha256 lives (whether or not it is there).
    pub fn blob(&self, sha256: &Sha256) -> PathBuf {
        let h = sha256.as_str();
        self.root.join("blobs").join("sha256").join(&h[..2]).join(h)
    }

    fn stamp_path(&self, sha256: &Sha256) -> PathBuf {
        let mut p = self.blob(sha256).into_os_string();
        p.push(".stamp");
        PathBuf::from(p)
    }

    /// Look up a blob and make sure its bytes are the ones named. A
    /// corrupt blob (and its stamp) is removed.
    pub fn lookup(&self, sha256: &Sha256) -> std::io::Result<Lookup> {
        let path = self.blob(sha256);
        let md = match std::fs::metadata(&path) {
            Ok(md) if md.is_file() => md,
            Ok(_) => return Ok(Lookup::Missing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Missing),
            Err(e) => return Err(e),
        };
        let now = Stamp::of(&md);
        if self.known.lock().expect("poisoned").get(sha256) == Some(&now) {
            return Ok(Lookup::Verified {
                path,
                size: md.len(),
            });
        }
        let stamp_path = self.stamp_path(sha256);
        let stamped = std::fs::read_to_string(&stamp_path)
            .ok()
            .and_then(|s| Stamp::parse(&s));
        if stamped.as_ref() == Some(&now) && now.settled() {
            return Ok(Lookup::Verified {
                path,
                size: md.len(),
            });
        }
        let (actual, size) = Sha256::of_file(&path)?;
        if actual != *sha256 {
            tracing::warn!(
                "cached {} is corrupt (its bytes hash to {actual}); removing it",
                path.display()
            );
            let _ = std::fs::remove_file(&stamp_path);
            std::fs::remove_file(&path)?;
            return Ok(Lookup::Corrupt { actual, size });
        }
        // Stamp it only when the file's metadata did not move while it was
        // read, and its last change is old enough to be told apart.
        let after = std::fs::metadata(&path).map(|m| Stamp::of(&m))?;
        if after == now {
            if now.settled() {
                let _ = self.write_atomic(&stamp_path, now.text().as_bytes());
            }
            self.known
                .lock()
                .expect("poisoned")
                .insert(sha256.clone(), now);
        }
        Ok(Lookup::Verified { path, size })
    }

    /// Note that the blob at `path` was just written by this run from bytes
    /// that hashed to `sha256`: later lookups in this run trust it while
    /// its stamp holds.
    pub fn written(&self, sha256: &Sha256, path: &Path) {
        if let Ok(md) = std::fs::metadata(path) {
            self.known
                .lock()
                .expect("poisoned")
                .insert(sha256.clone(), Stamp::of(&md));
        }
    }

    /// This run's own temporary folder (created on first use). What a killed
    /// run leaves there is removed by the next run's [`Cache::reap`].
    pub fn tmp_dir(&self) -> std::io::Result<PathBuf> {
        if let Some(r) = self.run.get() {
            return Ok(r.path().to_path_buf());
        }
        let created = RunDir::create(&self.root.join("tmp"), "run-")?;
        // Another task may have won the race; its folder is used, ours dropped.
        let _ = self.run.set(created);
        Ok(self.run.get().expect("set above").path().to_path_buf())
    }

    /// Remove the temporary folders of runs that are no longer alive.
    pub fn reap(&self) -> usize {
        crate::fsutil::reap(&self.root.join("tmp"), "run-", Duration::from_secs(3600))
    }

    /// Path for cached data of `kind` under a key derived from `id`.
    pub fn keyed(&self, kind: &str, id: &str, ext: &str) -> PathBuf {
        self.root
            .join(kind)
            .join(format!("{}{ext}", &sha256_hex(id.as_bytes())[..32]))
    }

    /// Write `data` to `path` atomically (a temporary file in this run's
    /// folder, then a rename).
    pub fn write_atomic(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
        crate::fsutil::write_atomic_via(&self.tmp_dir()?, path, data)
    }

    /// Write derived data with its own sha256, for [`Cache::read_checked`].
    pub fn write_checked(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let mut out = format!("{CHECKED}{}\n", Sha256::of(data)).into_bytes();
        out.extend_from_slice(data);
        self.write_atomic(path, &out)
    }

    /// Write `value` as JSON with its own sha256, for [`Cache::read_json`].
    pub fn write_json<T: serde::Serialize>(&self, path: &Path, value: &T) -> std::io::Result<()> {
        let json = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        self.write_checked(path, &json)
    }

    /// A value written by [`Cache::write_json`], if present, intact and
    /// readable as a `T`.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Option<T> {
        serde_json::from_slice(&self.read_checked(path)?).ok()
    }

    /// Data written by [`Cache::write_checked`], if present and intact. An
    /// entry that fails its check is removed, so that it is made again.
    pub fn read_checked(&self, path: &Path) -> Option<Vec<u8>> {
        let raw = std::fs::read(path).ok()?;
        let head = CHECKED.len() + 65;
        let intact = raw.len() >= head
            && raw.starts_with(CHECKED.as_bytes())
            && raw[head - 1] == b'\n'
            && std::str::from_utf8(&raw[CHECKED.len()..head - 1])
                .ok()
                .and_then(|h| Sha256::parse(h).ok())
                .is_some_and(|h| h == Sha256::of(&raw[head..]));
        if intact {
            return Some(raw[head..].to_vec());
        }
        tracing::warn!("cached {} is corrupt; fetching it again", path.display());
        let _ = std::fs::remove_file(path);
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    fn put(cache: &Cache, data: &[u8]) -> (Sha256, PathBuf) {
        let h = Sha256::of(data);
        let p = cache.blob(&h);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        (h, p)
    }

    #[test]
    fn corrupt_and_emptied_blobs_are_found_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let (h, p) = put(&cache, b"hello wheel");
        assert!(matches!(cache.lookup(&h).unwrap(), Lookup::Verified { .. }));
        // One byte flipped.
        std::fs::write(&p, b"hellO wheel").unwrap();
        assert!(matches!(
            cache.lookup(&h).unwrap(),
            Lookup::Corrupt { size: 11, .. }
        ));
        assert!(!p.exists());
        assert!(matches!(cache.lookup(&h).unwrap(), Lookup::Missing));
        // Emptied.
        let (h, p) = put(&cache, b"second");
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(
            cache.lookup(&h).unwrap(),
            Lookup::Corrupt { size: 0, .. }
        ));
    }

    /// Rewrite a file in place and set its mtime back to what it was (its
    /// ctime still moves: no program can set that back).
    fn rewrite_keeping_mtime(p: &Path, data: &[u8]) {
        let mtime = std::fs::metadata(p).unwrap().modified().unwrap();
        std::fs::write(p, data).unwrap();
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }

    #[test]
    fn a_blob_this_run_wrote_is_trusted_only_while_untouched() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let (h, p) = put(&cache, b"written by this run");
        cache.written(&h, &p);
        assert!(matches!(cache.lookup(&h).unwrap(), Lookup::Verified { .. }));
        assert!(
            !cache.stamp_path(&h).exists(),
            "trust within a run is never written down"
        );
        // Changed in place later (the same size, mtime set back): ctime
        // moved, so the bytes are hashed again and found wrong.
        std::thread::sleep(Duration::from_millis(50));
        rewrite_keeping_mtime(&p, b"written by thiS run");
        assert!(matches!(cache.lookup(&h).unwrap(), Lookup::Corrupt { .. }));
        // Replaced by another file: another inode, hashed again.
        let (h, p) = put(&cache, b"second blob");
        cache.written(&h, &p);
        let tmp = d.path().join("replacement");
        std::fs::write(&tmp, b"second bloB").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        assert!(matches!(cache.lookup(&h).unwrap(), Lookup::Corrupt { .. }));
    }

    #[test]
    fn a_stamp_is_trusted_only_while_the_file_is_untouched() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let (h, p) = put(&cache, b"stamped");
        // Make the file's change old enough to be stamped: ctime moves only
        // forward, so wait it out.
        std::thread::sleep(STAMP_MIN_AGE + Duration::from_millis(100));
        assert!(matches!(cache.lookup(&h).unwrap(), Lookup::Verified { .. }));
        assert!(cache.stamp_path(&h).is_file(), "a settled file is stamped");
        // Rewrite it with the same size and set its mtime back: the stamp
        // no longer matches (ctime moved), so the bytes are hashed again.
        rewrite_keeping_mtime(&p, b"stampeD");
        assert!(matches!(cache.lookup(&h).unwrap(), Lookup::Corrupt { .. }));
    }

    #[test]
    fn checked_entries_detect_damage() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let p = d.path().join("metadata/x");
        cache.write_checked(&p, b"Name: x\n").unwrap();
        assert_eq!(cache.read_checked(&p).unwrap(), b"Name: x\n");
        let mut raw = std::fs::read(&p).unwrap();
        let last = raw.len() - 2;
        raw[last] ^= 1;
        std::fs::write(&p, raw).unwrap();
        assert!(cache.read_checked(&p).is_none());
        assert!(!p.exists(), "a damaged entry is dropped");
        std::fs::write(&p, b"").unwrap();
        assert!(cache.read_checked(&p).is_none());
    }
}
