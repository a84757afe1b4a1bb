//! "Up to date": a build whose inputs are those of the build that wrote
//! the output folder and its uploads, none of which has changed since,
//! would write the same bytes again (builds are deterministic); it is
//! skipped. What was written is recorded in the cache: each file's size,
//! mtime, ctime and inode, which any change to it moves.

use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::fetch::cache::{Cache, Stamp};

#[derive(Serialize, Deserialize)]
struct Record<T> {
    inputs: String,
    /// Path (relative to the output folder) and stamp of every file written.
    files: Vec<(String, Stamp)>,
    value: T,
}

fn record_path(cache: &Cache, out: &Path, name: &str) -> Option<PathBuf> {
    let out = std::fs::canonicalize(out).ok()?;
    Some(cache.keyed("outputs", &format!("{} {name}", out.display()), ".json"))
}

/// The files of the bundle folder and the uploads beside it, relative to `out`.
fn written(out: &Path, name: &str, uploads: &[String]) -> Option<Vec<(String, PathBuf)>> {
    let mut files: Vec<(String, PathBuf)> = crate::fsutil::relative_files(&out.join(name))
        .ok()?
        .into_iter()
        .map(|(rel, abs)| (format!("{name}/{rel}"), abs))
        .collect();
    files.extend(uploads.iter().map(|u| (u.clone(), out.join(u))));
    files.sort();
    Some(files)
}

/// Record what a build with `inputs` wrote in `out` (best effort).
pub fn record<T: Serialize>(
    cache: &Cache,
    out: &Path,
    name: &str,
    uploads: &[String],
    inputs: &str,
    value: &T,
) {
    let (Some(path), Some(files)) = (record_path(cache, out, name), written(out, name, uploads))
    else {
        return;
    };
    let mut stamped = Vec::new();
    for (rel, abs) in files {
        let Ok(md) = std::fs::symlink_metadata(&abs) else {
            return;
        };
        stamped.push((rel, Stamp::of(&md)));
    }
    let rec = Record {
        inputs: inputs.to_string(),
        files: stamped,
        value,
    };
    let _ = cache.write_json(&path, &rec);
}

/// What the build with the same `inputs` recorded, when the output folder
/// and its uploads hold exactly the files it wrote, each unchanged.
pub fn unchanged<T: DeserializeOwned>(
    cache: &Cache,
    out: &Path,
    name: &str,
    inputs: &str,
    uploads: impl Fn(&T) -> Vec<String>,
) -> Option<T> {
    let path = record_path(cache, out, name)?;
    let rec: Record<T> = cache.read_json(&path)?;
    if rec.inputs != inputs {
        return None;
    }
    let now = written(out, name, &uploads(&rec.value))?;
    if now.len() != rec.files.len() {
        return None;
    }
    for ((rel, abs), (was, stamp)) in now.iter().zip(&rec.files) {
        let md = std::fs::symlink_metadata(abs).ok()?;
        if rel != was || Stamp::of(&md) != *stamp {
            return None;
        }
    }
    Some(rec.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_to_what_was_written_means_a_build() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path().join("cache"));
        let out = d.path().join("dist");
        std::fs::create_dir_all(out.join("b/wheels")).unwrap();
        std::fs::write(out.join("b/manifest.json"), "{}").unwrap();
        std::fs::write(out.join("b/wheels/w.whl"), "wheel").unwrap();
        std::fs::write(out.join("b.zip"), "zip").unwrap();
        let ups = |_: &String| vec!["b.zip".to_string()];
        let build = || {
            record(
                &cache,
                &out,
                "b",
                &["b.zip".into()],
                "in-1",
                &"done".to_string(),
            )
        };
        build();
        let same = || unchanged::<String>(&cache, &out, "b", "in-1", ups);
        assert_eq!(same().as_deref(), Some("done"));
        assert!(unchanged::<String>(&cache, &out, "b", "in-2", ups).is_none());
        // Rewritten (even with the same bytes), added, removed: a build.
        // (Apart by more than a clock tick: file times move in ticks, and
        // a change within the tick of the build's own write goes unseen,
        // as it does for make and cargo.)
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::write(out.join("b/wheels/w.whl"), "wheel").unwrap();
        assert!(same().is_none());
        build();
        assert!(same().is_some());
        std::fs::write(out.join("b/extra.txt"), "x").unwrap();
        assert!(same().is_none());
        std::fs::remove_file(out.join("b/extra.txt")).unwrap();
        assert!(same().is_some());
        std::fs::remove_file(out.join("b.zip")).unwrap();
        assert!(same().is_none());
    }
}
