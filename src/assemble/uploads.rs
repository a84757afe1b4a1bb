//! What the user uploads: the archive, split into volumes when it is larger
//! than the target accepts, or the folder's files; listed in order with
//! sizes and sha256 in `uploads.json`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io, list_files, AssembleError, Format};
use crate::model::Sha256;

/// The file in the bundle folder that lists the uploads (not in the archive:
/// it describes the archive).
pub const UPLOADS_JSON: &str = "uploads.json";

/// One file to upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Its path relative to the output folder (`sqlite-utils.zip`,
    /// `big.zip.002`, or `name/...` for a folder bundle).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The sha256 of its bytes.
    pub sha256: Sha256,
}

/// Everything the user uploads, in order: `uploads.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploads {
    /// The files to upload, in order.
    pub uploads: Vec<Upload>,
    /// The archive they are (or join into, when split into volumes);
    /// `None` for a folder bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Upload>,
    /// The upload limit the files were cut to.
    pub max_file_bytes: u64,
}

impl Uploads {
    /// Whether the archive was split into volumes.
    pub fn split(&self) -> bool {
        self.archive.as_ref().is_some_and(|a| {
            self.uploads.len() > 1 || self.uploads.first().is_some_and(|u| u.path != a.path)
        })
    }

    /// Read `uploads.json` from a bundle folder, if it has one.
    pub fn read(bundle_dir: &Path) -> Option<Result<Uploads, String>> {
        let path = bundle_dir.join(UPLOADS_JSON);
        let text = std::fs::read_to_string(&path).ok()?;
        Some(serde_json::from_str(&text).map_err(|e| format!("{UPLOADS_JSON}: {e}")))
    }
}

/// The name of volume `n` (from 1) of `archive`.
pub fn volume_name(archive: &str, n: usize) -> String {
    format!("{archive}.{n:03}")
}

/// The uploaded archive's volumes, when `path` is one of them
/// (`name.zip.001`): all of them, in order, from 001 on.
pub fn volumes_of(path: &Path) -> Option<Vec<PathBuf>> {
    let file = path.file_name()?.to_str()?;
    let (archive, n) = file.rsplit_once('.')?;
    if n.len() < 3 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    loop {
        let p = dir.join(volume_name(archive, out.len() + 1));
        if !p.is_file() {
            return Some(out);
        }
        out.push(p);
    }
}

/// Join a volume set into `dir/<archive name>` (streamed), for reading it as
/// the archive it is: returns the joined file.
pub fn join_volumes(volumes: &[PathBuf], dir: &Path) -> std::io::Result<PathBuf> {
    let first = volumes
        .first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no volume"))?;
    let name = first
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('.'))
        .map_or("joined", |(a, _)| a)
        .to_string();
    let joined = dir.join(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&joined)?);
    for v in volumes {
        std::io::copy(&mut std::fs::File::open(v)?, &mut out)?;
    }
    std::io::Write::flush(&mut out)?;
    Ok(joined)
}

/// Write the archive of `dir` into `out_dir` (nothing for a folder bundle)
/// and list what to upload. Over `max_file_bytes`, the archive is split
/// into volumes of at most that size, or, when `split` is false, refused.
pub fn write_uploads(
    dir: &Path,
    name: &str,
    format: Format,
    out_dir: &Path,
    max_file_bytes: u64,
    split: bool,
) -> Result<Uploads, AssembleError> {
    let max = max_file_bytes.max(1);
    let Some(ext) = format.extension() else {
        let mut uploads = Vec::new();
        for (rel, full) in list_files(dir)? {
            if rel == "PROMPT.txt" || rel == UPLOADS_JSON {
                continue;
            }
            let (sha256, size) = Sha256::of_file(&full).map_err(io(&full))?;
            if size > max && !split {
                return Err(AssembleError::TooLarge {
                    file: format!("{name}/{rel}"),
                    size,
                    limit: max,
                });
            }
            uploads.push(Upload {
                path: format!("{name}/{rel}"),
                size,
                sha256,
            });
        }
        return Ok(Uploads {
            uploads,
            archive: None,
            max_file_bytes: max,
        });
    };
    let archive_name = format!("{name}.{ext}");
    let archive_path = out_dir.join(&archive_name);
    // The digest of the archive as written.
    let (sha256, size) = match format {
        Format::Zip => super::write_zip(dir, name, &archive_path)?,
        Format::TarGz => super::write_tar_gz(dir, name, &archive_path)?,
        Format::Dir => unreachable!("a folder has no archive"),
    };
    let archive = Upload {
        path: archive_name.clone(),
        size,
        sha256,
    };
    if size <= max {
        return Ok(Uploads {
            uploads: vec![archive.clone()],
            archive: Some(archive),
            max_file_bytes: max,
        });
    }
    if !split {
        std::fs::remove_file(&archive_path).map_err(io(&archive_path))?;
        return Err(AssembleError::TooLarge {
            file: archive_name,
            size,
            limit: max,
        });
    }
    let mut reader = std::fs::File::open(&archive_path).map_err(io(&archive_path))?;
    let mut uploads = Vec::new();
    let mut left = size;
    while left > 0 {
        let volume = volume_name(&archive_name, uploads.len() + 1);
        let path = out_dir.join(&volume);
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let (sha256, n) = Sha256::copy((&mut reader).take(max), std::io::BufWriter::new(file))
            .map_err(io(&path))?;
        if n == 0 {
            break;
        }
        left = left.saturating_sub(n);
        uploads.push(Upload {
            path: volume,
            size: n,
            sha256,
        });
    }
    std::fs::remove_file(&archive_path).map_err(io(&archive_path))?;
    Ok(Uploads {
        uploads,
        archive: Some(archive),
        max_file_bytes: max,
    })
}

/// Parse a size as `--max-upload` takes it: bytes, or a number with
/// `K`/`M`/`G` (powers of 1000, with an optional `B`) or `KiB`/`MiB`/`GiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use B, KB, MB, GB, KiB, MiB or GiB)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 10MB, 512MiB, 1000000)"))?;
    let bytes = (value * factor as f64).round();
    if bytes < 1.0 {
        return Err(format!("`{text}`: the size must be at least 1 byte"));
    }
    // u64::MAX as f64 rounds up to 2^64, which is already too large.
    if bytes >= u64::MAX as f64 {
        return Err(format!(
            "`{text}`: the size is too large (at most {} bytes, about 18 EB)",
            u64::MAX
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("10 M").unwrap(), 10_000_000);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("0").is_err());
        let e = parse_size("99999999999999999999999GB").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        assert!(!e.contains("at least"), "{e}");
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
    }

    /// A bundle folder with a file of `n` bytes that does not compress.
    fn folder(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("stage/demo");
        std::fs::create_dir_all(dir.join("wheels")).unwrap();
        let mut state = 0x9e37_79b9_u32;
        let data: Vec<u8> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        std::fs::write(dir.join("wheels/big-1-py3-none-any.whl"), data).unwrap();
        std::fs::write(dir.join("manifest.json"), b"{}").unwrap();
        (d, dir)
    }

    #[test]
    fn an_archive_over_the_limit_becomes_volumes_that_join_into_it() {
        let (d, dir) = folder(25_000);
        let out = d.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let u = write_uploads(&dir, "demo", Format::Zip, &out, 10_000, true).unwrap();
        let names: Vec<&str> = u.uploads.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(names, ["demo.zip.001", "demo.zip.002", "demo.zip.003"]);
        assert!(u.split());
        assert!(u.uploads.iter().all(|v| v.size <= 10_000));
        assert!(!out.join("demo.zip").exists(), "only the volumes remain");
        let mut joined = Vec::new();
        for v in &u.uploads {
            let data = std::fs::read(out.join(&v.path)).unwrap();
            assert_eq!(Sha256::of(&data), v.sha256);
            assert_eq!(data.len() as u64, v.size);
            joined.extend(data);
        }
        let archive = u.archive.unwrap();
        assert_eq!(Sha256::of(&joined), archive.sha256);
        assert_eq!(joined.len() as u64, archive.size);
        let z = zip::ZipArchive::new(std::io::Cursor::new(joined)).unwrap();
        assert!(z
            .file_names()
            .any(|n| n.unwrap() == "demo/wheels/big-1-py3-none-any.whl"));
    }

    #[test]
    fn under_the_limit_one_archive_and_no_split_refuses_more() {
        let (d, dir) = folder(2_000);
        let out = d.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let u = write_uploads(&dir, "demo", Format::TarGz, &out, 1 << 20, false).unwrap();
        assert!(!u.split());
        assert_eq!(u.uploads.len(), 1);
        assert_eq!(u.uploads[0].path, "demo.tar.gz");
        let e = write_uploads(&dir, "demo", Format::Zip, &out, 1_000, false).unwrap_err();
        assert!(e.to_string().starts_with("demo.zip is "), "{e}");
        assert!(!out.join("demo.zip").exists());
        assert!(!out.join("demo.zip.001").exists());
    }

    #[test]
    fn a_folder_bundle_uploads_its_files_but_not_the_prompt() {
        let (d, dir) = folder(10);
        std::fs::write(dir.join("PROMPT.txt"), b"paste me").unwrap();
        let u = write_uploads(&dir, "demo", Format::Dir, d.path(), 1 << 20, true).unwrap();
        let names: Vec<&str> = u.uploads.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            names,
            ["demo/manifest.json", "demo/wheels/big-1-py3-none-any.whl"]
        );
        assert!(u.archive.is_none());
    }
}
