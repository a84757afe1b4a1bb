//! Small filesystem helpers shared by the stages.

use std::path::{Path, PathBuf};

/// Regular files under `dir`, as (`/`-separated relative path, full path),
/// sorted by relative path.
pub fn relative_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let ty = e.file_type()?;
            let p = e.path();
            if ty.is_dir() {
                walk(root, &p, out)?;
            } else if ty.is_file() {
                let rel = p
                    .strip_prefix(root)
                    .expect("under root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, p));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Write `data` to `path` through a temporary file beside it, renamed into
/// place: readers see the old file or the new one, never a part.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    write_atomic_via(dir, path, data)
}

/// As [`write_atomic`], with the temporary file in `tmp_dir` (which must be
/// on the same filesystem as `path`).
pub fn write_atomic_via(tmp_dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir)?;
    std::io::Write::write_all(&mut tmp, data)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Set a file's Unix permission bits.
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// A temporary folder owned by this process: `parent/<prefix><random>/`,
/// holding a `.lock` file that stays locked (flock) while the process
/// lives. Removed on drop. When the process is killed, the kernel releases
/// the lock, and the next run's [`reap`] removes the folder.
#[derive(Debug)]
pub struct RunDir {
    dir: Option<tempfile::TempDir>,
    _lock: std::fs::File,
}

const LOCK: &str = ".lock";

impl RunDir {
    pub fn create(parent: &Path, prefix: &str) -> std::io::Result<RunDir> {
        std::fs::create_dir_all(parent)?;
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        let lock = std::fs::File::create(dir.path().join(LOCK))?;
        lock.try_lock().map_err(std::io::Error::other)?;
        Ok(RunDir {
            dir: Some(dir),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

/// Folders of a pattern that no live process owns.
/// A folder without a lock file (from a run killed in the instant between
/// creating it and locking it, or from an older version) counts as stale
/// once it is `grace` old.
pub fn reap(parent: &Path, prefix: &str, grace: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(prefix) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = e.path();
        let stale = match std::fs::File::open(path.join(LOCK)) {
            // Locked by its owner: in use. Unlocked: the owner is gone.
            Ok(f) => f.try_lock().is_ok(),
            Err(_) => e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= grace),
        };
        if stale && std::fs::remove_dir_all(&path).is_ok() {
            tracing::debug!("removed {}, left by a run that ended early", path.display());
            removed += 1;
        }
    }
    removed
}

/// `path` as an absolute path (against the current folder; `.` parts kept
/// out), or as given when the current folder cannot be read.
pub fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Seconds since the epoch for archive timestamps: `SOURCE_DATE_EPOCH`, else
/// 1980-01-01 (the earliest a zip can hold).
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(315_532_800)
        .max(315_532_800)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_are_reaped_only_when_their_owner_is_gone() {
        let parent = tempfile::tempdir().unwrap();
        let live = RunDir::create(parent.path(), ".x-").unwrap();
        // A folder whose lock nobody holds, as a killed run leaves it.
        let dead = parent.path().join(".x-dead");
        std::fs::create_dir_all(dead.join("sub")).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        // A fresh folder with no lock file is given its grace period.
        let young = parent.path().join(".x-young");
        std::fs::create_dir(&young).unwrap();
        let other = parent.path().join("keep");
        std::fs::create_dir(&other).unwrap();
        assert_eq!(
            reap(parent.path(), ".x-", std::time::Duration::from_secs(600)),
            1
        );
        assert!(live.path().is_dir());
        assert!(!dead.exists());
        assert!(young.is_dir() && other.is_dir());
        assert_eq!(reap(parent.path(), ".x-", std::time::Duration::ZERO), 1);
        assert!(!young.exists() && live.path().is_dir());
        let p = live.path().to_path_buf();
        drop(live);
        assert!(!p.exists());
    }
}
