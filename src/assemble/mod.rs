//! The `assemble` stage: manifest, installer, prompt, and deterministic
//! archives, written to a temporary path and renamed into place.

use crate::error::Diagnose;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::target::Target;
use crate::model::Sha256;

mod follow;
mod install_sh;
mod prompt;
pub mod stamp;
mod uploads;

const INSTALL_PY: &str = include_str!("install.py");

pub use prompt::prompt_text;
pub use uploads::{
    join_volumes, parse_size, volume_name, volumes_of, write_uploads, Upload, Uploads, UPLOADS_JSON,
};

pub use crate::model::manifest::{FileEntry, FileKind, Manifest, MANIFEST_SCHEMA};

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} is {size} bytes, over the upload limit of {limit} bytes")]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error("writing archive {path}")]
    Archive {
        path: PathBuf,
        #[source]
        source: Box<zip::result::ZipError>,
    },
}

impl Diagnose for AssembleError {
    fn hint(&self) -> Option<String> {
        match self {
            AssembleError::TooLarge { .. } => Some(
                "leave out --no-split to upload it as volumes, or raise the limit with --max-upload SIZE".into(),
            ),
            _ => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AssembleError + '_ {
    move |source| AssembleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Archive format(s) to write beside the bundle directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    #[default]
    Zip,
    TarGz,
    Dir,
}

impl Format {
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Format::Zip => Some("zip"),
            Format::TarGz => Some("tar.gz"),
            Format::Dir => None,
        }
    }
}

pub use crate::fsutil::source_date_epoch;

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn zip_time(epoch: u64) -> zip::DateTime {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let (y, m, d) = civil(days);
    zip::DateTime::from_date_and_time(
        y.clamp(1980, 2107) as u16,
        m as u8,
        d as u8,
        (secs / 3600) as u8,
        ((secs % 3600) / 60) as u8,
        (secs % 60) as u8,
    )
    .unwrap_or_default()
}

/// Mode for a bundle path: executables under `bin/` and scripts 0755;
/// under `node_modules/` and `runtime/`, 0755 when staged executable (npm
/// tarballs mark their programs); else 0644.
fn mode_for(path: &str, staged: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let marked = (path.starts_with("node_modules/") || path.starts_with("runtime/"))
        && staged.permissions().mode() & 0o111 != 0;
    if path.starts_with("bin/") || path == "install.py" || path == "install.sh" || marked {
        0o755
    } else {
        0o644
    }
}

/// Sorted list of (relative `/` path, absolute path) of files in `dir`.
fn list_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, AssembleError> {
    crate::fsutil::relative_files(dir).map_err(io(dir))
}

/// Write `manifest.json` and the installer (`install.py`, or `install.sh`
/// for a target without Python) into the staged bundle.
pub fn write_support_files(dir: &Path, manifest: &Manifest) -> Result<(), AssembleError> {
    let mut json = serde_json::to_string_pretty(manifest).expect("manifest serializes");
    json.push('\n');
    let p = dir.join("manifest.json");
    std::fs::write(&p, json).map_err(io(&p))?;
    // PEP 751: the wheels, pointing at wheels/<file>, for other installers.
    if manifest.files.iter().any(|f| f.kind == FileKind::Wheel) {
        let p = dir.join("pylock.toml");
        let text = crate::model::pylock::Pylock::of_manifest(manifest).to_toml();
        std::fs::write(&p, text).map_err(io(&p))?;
    }
    // A target without Python gets install.sh instead of install.py.
    if manifest.target.python == "none" {
        let p = dir.join("install.sh");
        std::fs::write(&p, install_sh::script(manifest)).map_err(io(&p))?;
    } else {
        let p = dir.join("install.py");
        std::fs::write(&p, INSTALL_PY).map_err(io(&p))?;
    }
    Ok(())
}

/// Write `PROMPT.txt` and `uploads.json` into the bundle folder, once the
/// uploads are known (neither is in the archive: both describe it).
pub fn write_prompt(
    dir: &Path,
    manifest: &Manifest,
    target: &Target,
    uploads: &Uploads,
) -> Result<(), AssembleError> {
    let p = dir.join("PROMPT.txt");
    std::fs::write(&p, prompt_text(manifest, target, uploads)).map_err(io(&p))?;
    let mut json = serde_json::to_string_pretty(uploads).expect("uploads serialize");
    json.push('\n');
    let p = dir.join(UPLOADS_JSON);
    std::fs::write(&p, json).map_err(io(&p))?;
    Ok(())
}

/// Write a deterministic zip of `dir` as `<name>/...` at `dest`: sorted
/// entries, fixed timestamps, normalized modes; wheels and archives stored.
/// Returns the digest and size of the file written, hashed while it is
/// written (see [`follow`]).
pub fn write_zip(dir: &Path, name: &str, dest: &Path) -> Result<(Sha256, u64), AssembleError> {
    let arch = |source: zip::result::ZipError| AssembleError::Archive {
        path: dest.to_path_buf(),
        source: Box::new(source),
    };
    let files = list_files(dir)?;
    let (file, sealer) = follow::FollowedFile::create(dest).map_err(io(dest))?;
    let mut zip = zip::ZipWriter::new(file);
    let time = zip_time(source_date_epoch());
    let mut buf = vec![0u8; 1 << 20];
    for (rel, abs) in files {
        let stored = rel.ends_with(".whl") || rel.ends_with(".zip") || rel.ends_with(".gz");
        let meta = std::fs::metadata(&abs).map_err(io(&abs))?;
        let size = meta.len();
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(if stored {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            })
            .last_modified_time(time)
            .unix_permissions(mode_for(&rel, &meta))
            .large_file(size >= 0xFFFF_FFFF);
        // Starting an entry fills in the previous one's header: below what
        // was written before it, nothing changes again.
        let written = sealer.end();
        zip.start_file(format!("{name}/{rel}"), options)
            .map_err(arch)?;
        sealer.seal(written);
        let mut src = std::fs::File::open(&abs).map_err(io(&abs))?;
        loop {
            let n = src.read(&mut buf).map_err(io(&abs))?;
            if n == 0 {
                break;
            }
            zip.write_all(&buf[..n]).map_err(io(dest))?;
        }
    }
    let file = zip.finish().map_err(arch)?;
    match file.finish().map_err(io(dest))? {
        Some(digest) => Ok(digest),
        None => Sha256::of_file(dest).map_err(io(dest)),
    }
}

/// Write a deterministic `.tar.gz` of `dir` as `<name>/...` at `dest`.
/// Returns the digest and size of the file written.
pub fn write_tar_gz(dir: &Path, name: &str, dest: &Path) -> Result<(Sha256, u64), AssembleError> {
    let files = list_files(dir)?;
    let file = std::fs::File::create(dest).map_err(io(dest))?;
    let gz = flate2::GzBuilder::new().mtime(0).write(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let mtime = source_date_epoch();
    for (rel, abs) in files {
        let meta = std::fs::metadata(&abs).map_err(io(&abs))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(meta.len());
        header.set_mode(mode_for(&rel, &meta));
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        let src = std::fs::File::open(&abs).map_err(io(&abs))?;
        tar.append_data(&mut header, format!("{name}/{rel}"), src)
            .map_err(io(dest))?;
    }
    let gz = tar.into_inner().map_err(io(dest))?;
    let mut w = gz.finish().map_err(io(dest))?;
    w.flush().map_err(io(dest))?;
    drop(w);
    Sha256::of_file(dest).map_err(io(dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(3652), (1980, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }

    #[test]
    fn modes() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, exe) = (dir.path().join("p"), dir.path().join("x"));
        std::fs::write(&plain, "p").unwrap();
        std::fs::write(&exe, "x").unwrap();
        crate::fsutil::set_mode(&plain, 0o644).unwrap();
        crate::fsutil::set_mode(&exe, 0o755).unwrap();
        let (plain, exe) = (
            std::fs::metadata(&plain).unwrap(),
            std::fs::metadata(&exe).unwrap(),
        );
        assert_eq!(mode_for("bin/deno", &plain), 0o755);
        assert_eq!(mode_for("wheels/a.whl", &plain), 0o644);
        assert_eq!(mode_for("node_modules/a/bin/x", &exe), 0o755);
        assert_eq!(mode_for("node_modules/a/x.js", &plain), 0o644);
        assert_eq!(mode_for("lib/x", &exe), 0o644);
    }

    #[test]
    fn zip_is_deterministic() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("wheels")).unwrap();
        std::fs::write(d.path().join("wheels/a-1-py3-none-any.whl"), b"whl").unwrap();
        // Over a MiB, so that the digest follows the file in several reads.
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(d.path().join("wheels/b-1-py3-none-any.whl"), &big).unwrap();
        std::fs::write(d.path().join("manifest.json"), b"{}").unwrap();
        let out = tempfile::tempdir().unwrap();
        let a = out.path().join("a.zip");
        let b = out.path().join("b.zip");
        let digest = write_zip(d.path(), "x", &a).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write_zip(d.path(), "x", &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // The digest returned is that of the file written.
        assert_eq!(digest, Sha256::of_file(&a).unwrap());
        let tgz = out.path().join("a.tar.gz");
        assert_eq!(
            write_tar_gz(d.path(), "x", &tgz).unwrap(),
            Sha256::of_file(&tgz).unwrap()
        );
        let mut z = zip::ZipArchive::new(std::fs::File::open(&a).unwrap()).unwrap();
        let names: Vec<_> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
        assert_eq!(names.len(), 3);
        let w = z.by_name("x/wheels/a-1-py3-none-any.whl").unwrap();
        assert_eq!(w.compression(), zip::CompressionMethod::Stored);
    }
}
