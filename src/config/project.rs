//! A project folder packed as an sdist (`name-version.tar.gz`), so that the
//! project itself is built in the target's image as any sdist named by path
//! is. The archive is deterministic: sorted entries, one timestamp,
//! normalized modes and owners.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::requirements::RequirementsError;
use crate::model::Sha256;

/// What is never packed: version control, virtual environments and cache
/// folders, `dist/` at the top (where builds, bundle's among them, write),
/// and bundle's lock files at the top (`*.lock.json`, `pylock.toml`).
fn skipped(rel: &Path, path: &Path, is_dir: bool) -> bool {
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if !is_dir {
        // bundle's own lock files, written beside the project.
        let top = rel.parent() == Some(Path::new(""));
        return top && (name.ends_with(".lock.json") || name == "pylock.toml");
    }
    matches!(
        name.as_ref(),
        ".git" | ".hg" | ".svn" | "__pycache__" | ".tox" | ".nox" | "node_modules"
    ) || (name.starts_with('.') && name.ends_with("_cache"))
        || name.ends_with(".egg-info")
        || (rel == Path::new("dist"))
        || path.join("pyvenv.cfg").is_file()
}

/// Packs larger than this are refused: a project folder holding data.
const MAX_PACK_BYTES: u64 = 1 << 30;

/// The sdist file name of `name` `version`: the name normalized with `_`.
pub fn sdist_name(name: &str, version: &str) -> String {
    let mut norm = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !norm.ends_with('_') {
                norm.push('_');
            }
        } else {
            norm.push(c.to_ascii_lowercase());
        }
    }
    format!("{norm}-{version}.tar.gz")
}

/// Pack the project in `dir` as `dest_dir/<digest>/<name>-<version>.tar.gz`
/// (the digest: the start of the pack's sha256, so that each content has a
/// path of its own), written whole before it takes that name; the path and
/// the sha256. Symbolic links are left out.
pub fn pack(
    dir: &Path,
    name: &str,
    version: &str,
    dest_dir: &Path,
) -> Result<(PathBuf, Sha256), RequirementsError> {
    let failed = |message: String| RequirementsError::Pack {
        dir: dir.to_path_buf(),
        message,
    };
    let filename = sdist_name(name, version);
    let top = filename.trim_end_matches(".tar.gz").to_string();
    let mut files = Vec::new();
    collect(dir, Path::new(""), &mut files).map_err(|e| failed(e.to_string()))?;
    let total: u64 = files.iter().map(|(_, _, len, _)| len).sum();
    if total > MAX_PACK_BYTES {
        return Err(failed(format!(
            "holds {total} bytes of files, over the {MAX_PACK_BYTES} a project is packed with"
        )));
    }
    std::fs::create_dir_all(dest_dir)
        .map_err(|e| failed(format!("{}: {e}", dest_dir.display())))?;
    let tmp = tempfile::NamedTempFile::new_in(dest_dir)
        .map_err(|e| failed(format!("{}: {e}", dest_dir.display())))?;
    let mtime = crate::fsutil::source_date_epoch();
    let write = || -> std::io::Result<()> {
        let gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(tmp.as_file()),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        for (rel, path, len, exec) in &files {
            let mut h = tar::Header::new_gnu();
            h.set_size(*len);
            h.set_mode(if *exec { 0o755 } else { 0o644 });
            h.set_mtime(mtime);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            let file = std::fs::File::open(path)?;
            // A file that changed size since it was listed is an error
            // (the header would lie), not a silent truncation.
            let taken = std::io::Read::take(file, *len);
            tar.append_data(&mut h, Path::new(&top).join(rel), taken)?;
        }
        let gz = tar.into_inner()?;
        let mut out = gz.finish()?;
        out.flush()
    };
    write().map_err(|e| failed(e.to_string()))?;
    let (sha256, _) = Sha256::of_file(tmp.path()).map_err(|e| failed(e.to_string()))?;
    let folder = dest_dir.join(&sha256.as_str()[..16]);
    std::fs::create_dir_all(&folder).map_err(|e| failed(format!("{}: {e}", folder.display())))?;
    let dest = folder.join(&filename);
    tmp.persist(&dest)
        .map_err(|e| failed(format!("{}: {}", dest.display(), e.error)))?;
    Ok((dest, sha256))
}

/// The regular files under `dir/rel`, sorted: (relative path, path, size,
/// executable).
fn collect(
    dir: &Path,
    rel: &Path,
    out: &mut Vec<(PathBuf, PathBuf, u64, bool)>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rel = rel.join(e.file_name());
        let path = dir.join(&rel);
        let kind = e.file_type()?;
        if kind.is_dir() {
            if !skipped(&rel, &path, true) {
                collect(dir, &rel, out)?;
            }
        } else if kind.is_file() && !skipped(&rel, &path, false) {
            use std::os::unix::fs::PermissionsExt;
            let md = e.metadata()?;
            out.push((rel, path, md.len(), md.permissions().mode() & 0o111 != 0));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_packs_the_same_twice_without_vcs_caches_venvs_or_dist() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for (f, text) in [
            (
                "pyproject.toml",
                "[project]\nname = \"My.Pkg\"\nversion = \"1.0\"\n",
            ),
            ("src/my_pkg/__init__.py", "x = 1\n"),
            (".git/HEAD", "ref\n"),
            ("src/my_pkg/__pycache__/a.pyc", "pyc"),
            ("dist/old.zip", "zip"),
            (".venv/pyvenv.cfg", "home = /usr\n"),
            (".mypy_cache/x", "x"),
            ("docs/dist/kept.txt", "kept"),
            ("my-pkg.lock.json", "{}"),
            ("pylock.toml", ""),
        ] {
            std::fs::create_dir_all(p.join(f).parent().unwrap()).unwrap();
            std::fs::write(p.join(f), text).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", p.join("link")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let (a, sha) = pack(p, "My.Pkg", "1.0", out.path()).unwrap();
        assert_eq!(a.file_name().unwrap(), "my_pkg-1.0.tar.gz");
        let first = std::fs::read(&a).unwrap();
        assert_eq!(Sha256::of(&first), sha);
        let (b, again) = pack(p, "My.Pkg", "1.0", out.path()).unwrap();
        assert_eq!((&a, &sha), (&b, &again), "deterministic");
        // Changed content: another path, the first one kept.
        std::fs::write(p.join("src/my_pkg/__init__.py"), "x = 2\n").unwrap();
        let (c, other) = pack(p, "My.Pkg", "1.0", out.path()).unwrap();
        assert!(c != a && other != sha && a.is_file());
        let gz = flate2::read::GzDecoder::new(&first[..]);
        let names: Vec<String> = tar::Archive::new(gz)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "my_pkg-1.0/docs/dist/kept.txt",
                "my_pkg-1.0/pyproject.toml",
                "my_pkg-1.0/src/my_pkg/__init__.py",
            ]
        );
    }
}
