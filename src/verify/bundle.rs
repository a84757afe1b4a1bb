//! The bundle as the user uploads it, read on the host (never run here):
//! its uploads (a folder, an archive or its volumes) checked against what
//! `bundle build` listed, unpacked when need be, and every file checked
//! against the manifest before anything runs.

use std::path::{Path, PathBuf};

use crate::archive::{ArchiveError, ArchiveKind};
use crate::assemble::{self, Manifest, Upload, Uploads};

use super::VerifyError;

/// Files to upload: (path in the upload folder, the file on the host).
pub(super) type UploadFiles = Vec<(String, PathBuf)>;

/// A bundle as uploaded: the files to upload, and its contents read on the
/// host (never run here).
pub(super) struct Bundle {
    pub name: String,
    pub manifest: Manifest,
    /// In upload order; a folder bundle is uploaded as `<name>/...`.
    pub uploads: UploadFiles,
    /// What the uploads are (an archive, its volumes, or a folder's files).
    pub delivery: Uploads,
    /// PROMPT.txt, when the bundle folder has one; else it is written
    /// afresh for the target, as `bundle build` writes it.
    pub prompt: Option<String>,
    /// The bundle's folder on the host (unpacked from the uploads if need be).
    pub dir: PathBuf,
    _unpacked: Option<tempfile::TempDir>,
}

impl Bundle {
    /// Where the bundle's folder is in the sandbox once unpacked:
    /// `<upload_dir>/<name>`, the paths PROMPT.txt names.
    pub fn home(&self, target: &crate::config::target::Target) -> String {
        format!("{}/{}", target.upload_dir.trim_end_matches('/'), self.name)
    }
}

fn not_a_bundle(path: &Path) -> impl Fn(String) -> VerifyError + '_ {
    move |message| VerifyError::NotABundle {
        path: path.to_path_buf(),
        message,
    }
}

/// Hash one upload (streamed), checking it against what `bundle build`
/// listed.
fn check_upload(path: &Path, listed: Option<&Upload>) -> Result<Upload, String> {
    let (sha256, size) =
        crate::model::Sha256::of_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(u) = listed {
        if sha256 != u.sha256 || size != u.size {
            return Err(format!(
                "{} (changed: sha256 {sha256}, uploads.json {})",
                u.path, u.sha256
            ));
        }
    }
    Ok(Upload {
        path: name,
        size,
        sha256,
    })
}

/// Join archive uploads into one file in `tmp` (streamed) and unpack it
/// there: the bundle the sandbox will see. Returns its folder and the
/// joined archive's digest and size.
fn unpack_uploads(
    archive: &str,
    uploads: &[(String, PathBuf)],
    tmp: &Path,
) -> Result<(PathBuf, crate::model::Sha256, u64), String> {
    let joined = tmp.join(archive);
    let mut out = std::fs::File::create(&joined).map_err(|e| e.to_string())?;
    let mut whole = crate::model::hash::Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    for (_, from) in uploads {
        let mut file = std::fs::File::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            std::io::Write::write_all(&mut out, &buf[..n]).map_err(|e| e.to_string())?;
        }
    }
    drop(out);
    let (sha256, size) = whole.finish();
    let into = tmp.join("unpacked");
    unpack_archive(&joined, &into)?;
    std::fs::remove_file(&joined).map_err(|e| e.to_string())?;
    let top: Vec<PathBuf> = std::fs::read_dir(&into)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    match top.as_slice() {
        [dir] => Ok((dir.clone(), sha256, size)),
        _ => Err("the archive holds no <name>/manifest.json".into()),
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .map_err(|e| format!("manifest.json: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("manifest.json: {e}"))
}

/// A bundle folder's uploads: those its uploads.json lists (found beside
/// the folder, checked against their sizes and sha256), or, for a folder
/// without one, its files under the manifest's name.
fn folder_uploads(dir: &Path, manifest: &Manifest) -> Result<(Uploads, UploadFiles), VerifyError> {
    let bad = not_a_bundle(dir);
    let delivery = match Uploads::read(dir) {
        Some(listed) => listed.map_err(&bad)?,
        None => Uploads {
            uploads: Vec::new(),
            archive: None,
            max_file_bytes: u64::MAX,
        },
    };
    if delivery.archive.is_some() {
        // An archive's uploads are files beside the folder, never paths.
        if let Some(u) = delivery
            .uploads
            .iter()
            .find(|u| u.path.contains(['/', '\\']) || u.path.starts_with('.') || u.path.is_empty())
        {
            return Err(bad(format!(
                "{}: `{}` is not a file name beside the folder",
                assemble::UPLOADS_JSON,
                u.path
            )));
        }
    }
    let mut uploads = Vec::new();
    let mut changed = Vec::new();
    let parent = dir.parent().unwrap_or(Path::new(""));
    let beside = |u: &Upload| parent.join(&u.path).is_file();
    // A folder copied without its archive is uploaded as a folder.
    let delivery = if delivery.archive.is_some() && !delivery.uploads.iter().any(beside) {
        Uploads {
            uploads: Vec::new(),
            archive: None,
            max_file_bytes: delivery.max_file_bytes,
        }
    } else {
        delivery
    };
    if delivery.archive.is_some() {
        for u in &delivery.uploads {
            if !beside(u) {
                changed.push(format!("{} (missing beside the folder)", u.path));
                continue;
            }
            let from = parent.join(&u.path);
            match check_upload(&from, Some(u)) {
                Ok(_) => uploads.push((u.path.clone(), from)),
                Err(e) => changed.push(e),
            }
        }
    } else {
        // Under the manifest's name, which PROMPT.txt's paths use, whatever
        // the folder is called here.
        let files = crate::fsutil::relative_files(dir).map_err(|e| bad(e.to_string()))?;
        for (rel, full) in files {
            if rel == "PROMPT.txt" || rel == assemble::UPLOADS_JSON {
                continue;
            }
            uploads.push((format!("{}/{rel}", manifest.name), full));
        }
    }
    let delivery = if delivery.archive.is_none() {
        Uploads {
            uploads: uploads
                .iter()
                .map(|(path, from)| {
                    check_upload(from, None).map(|u| Upload {
                        path: path.clone(),
                        ..u
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(&bad)?,
            ..delivery
        }
    } else {
        delivery
    };
    if !changed.is_empty() {
        return Err(VerifyError::Tampered { files: changed });
    }
    Ok((delivery, uploads))
}

pub(super) fn read_bundle(path: &Path) -> Result<Bundle, VerifyError> {
    let bad = not_a_bundle(path);
    let tmp = tempfile::tempdir().map_err(|e| bad(e.to_string()))?;
    if path.is_dir() {
        let manifest = read_manifest(path).map_err(&bad)?;
        let (delivery, uploads) = folder_uploads(path, &manifest)?;
        let listed = Uploads::read(path).and_then(Result::ok);
        // PROMPT.txt speaks of the uploads it was written for; a folder
        // uploaded without its archive gets its own, as a folder bundle's.
        let prompt = if listed.is_some_and(|l| l.archive.is_some() != delivery.archive.is_some()) {
            None
        } else {
            Some(
                std::fs::read_to_string(path.join("PROMPT.txt"))
                    .map_err(|e| bad(format!("PROMPT.txt: {e}")))?,
            )
        };
        // What the sandbox unpacks is what is checked and read.
        let (dir, unpacked) = match &delivery.archive {
            Some(a) => (
                unpack_uploads(&a.path, &uploads, tmp.path())
                    .map_err(&bad)?
                    .0,
                Some(tmp),
            ),
            None => (path.to_path_buf(), None),
        };
        return Ok(Bundle {
            name: manifest.name.clone(),
            manifest,
            uploads,
            delivery,
            prompt,
            dir,
            _unpacked: unpacked,
        });
    }
    // An archive, or one of its volumes: upload it (them) as they are.
    let files = assemble::volumes_of(path).unwrap_or_else(|| vec![path.to_path_buf()]);
    let mut uploads = Vec::new();
    let mut listed = Vec::new();
    for f in &files {
        let u = check_upload(f, None).map_err(&bad)?;
        uploads.push((u.path.clone(), f.clone()));
        listed.push(u);
    }
    let archive_name = if assemble::volumes_of(path).is_some() {
        listed[0]
            .path
            .rsplit_once('.')
            .map_or("", |(a, _)| a)
            .to_string()
    } else {
        listed[0].path.clone()
    };
    let (dir, sha256, size) = unpack_uploads(&archive_name, &uploads, tmp.path()).map_err(&bad)?;
    let archive = Upload {
        path: archive_name.clone(),
        size,
        sha256,
    };
    let manifest = read_manifest(&dir).map_err(&bad)?;
    // Archives made before PROMPT.txt moved out of them still hold it.
    let prompt = std::fs::read_to_string(dir.join("PROMPT.txt")).ok();
    Ok(Bundle {
        name: manifest.name.clone(),
        manifest,
        uploads,
        delivery: Uploads {
            max_file_bytes: listed.iter().map(|u| u.size).max().unwrap_or(0),
            uploads: listed,
            archive: Some(archive),
        },
        prompt,
        dir,
        _unpacked: Some(tmp),
    })
}

/// Unpack a bundle archive (.zip or .tar.gz) on the host to read it;
/// members that would land outside `dest` are refused, and the archive
/// limits apply.
fn unpack_archive(path: &Path, dest: &Path) -> Result<(), String> {
    let name = path.to_string_lossy();
    let kind = ArchiveKind::from_name(&name);
    if !matches!(kind, ArchiveKind::Zip | ArchiveKind::TarGz) {
        return Err("expected a bundle folder, a .zip or a .tar.gz".into());
    }
    crate::archive::unpack_files(kind, path, crate::archive::Limits::from_env(), dest)
        .map(drop)
        .map_err(|e| match e {
            ArchiveError::Unsafe { member, why } => {
                format!("`{member}` would be written outside its folder ({why})")
            }
            other => other.to_string(),
        })
}

/// Files of the bundle that are not what its manifest says: changed,
/// missing, or named by a path that leaves the bundle.
pub(super) fn tampered_files(dir: &Path, manifest: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for f in &manifest.files {
        let Ok(rel) = crate::archive::safe_member_path(&f.path) else {
            out.push(format!("{} (a path outside the bundle)", f.path));
            continue;
        };
        match crate::model::Sha256::of_file(&dir.join(rel)) {
            Ok((h, _)) if h == f.sha256 => {}
            Ok((h, _)) => out.push(format!(
                "{} (changed: sha256 {h}, manifest {})",
                f.path, f.sha256
            )),
            Err(_) => out.push(format!("{} (missing)", f.path)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_json_cannot_name_files_outside_the_output_folder() {
        let (d, _bundle) = crate::verify::tests::folder_bundle(Vec::new());
        let dir = d.path().join("demo");
        std::fs::write(d.path().join("secret"), b"not for the sandbox").unwrap();
        let listed = format!(
            r#"{{"uploads": [{{"path": "../secret", "size": 19, "sha256": "{}"}}], "archive": {{"path": "demo.zip", "size": 1, "sha256": "{}"}}, "max_file_bytes": 10}}"#,
            crate::model::Sha256::of(b"not for the sandbox"),
            crate::model::Sha256::of(b"x")
        );
        std::fs::write(dir.join("uploads.json"), listed).unwrap();
        let e = read_bundle(&dir).err().expect("refused");
        assert!(
            e.to_string()
                .contains("`../secret` is not a file name beside the folder"),
            "{e}"
        );
    }

    #[test]
    fn archives_cannot_write_outside() {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("../evil", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, b"x").unwrap();
        let data = w.finish().unwrap().into_inner();
        let d = tempfile::tempdir().unwrap();
        let zip = d.path().join("b.zip");
        std::fs::write(&zip, data).unwrap();
        let e = unpack_archive(&zip, &d.path().join("in")).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        assert!(!d.path().join("evil").exists());
    }
}
