//! Requirements that name one file by URL (`name @ file:///...whl`,
//! `name @ https://...tar.gz#sha256=...`): a project of that one file, seen
//! through the target's eyes as an index file is.

use std::str::FromStr;
use std::sync::Arc;

use pep508_rs::PackageName;
use reqwest::Url;

use crate::model::hash::Sha256;
use crate::resolve::tags::WheelName;

use super::page::{FileJson, Hashes};
use super::{Index, IndexError};

/// A file a requirement names by URL, and what is known of it before the
/// fetch: its sha256 (the URL's `#sha256=`, a `--hash`, or the local
/// file's), and its size for a local file.
#[derive(Debug, Clone)]
pub struct DirectFile {
    /// The requirement as written, for messages.
    pub requirement: String,
    /// The package it names.
    pub name: PackageName,
    /// The file's URL, without its fragment.
    pub url: String,
    /// The sha256 the file must have.
    pub sha256: Option<Sha256>,
    /// Its size, when known.
    pub size: Option<u64>,
}

impl DirectFile {
    /// The file's name: the URL's last segment (a local path's own name).
    pub fn filename(&self) -> Option<String> {
        let url = Url::parse(&self.url).ok()?;
        if url.scheme() == "file" {
            let path = url.to_file_path().ok()?;
            return Some(path.file_name()?.to_string_lossy().into_owned());
        }
        url.path_segments()?
            .next_back()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

/// The project name a wheel or sdist file name starts with, normalized.
fn name_in(filename: &str) -> Option<PackageName> {
    let name = match WheelName::parse(filename) {
        Some(w) => w.name,
        None => {
            let stem = [".tar.gz", ".zip"]
                .iter()
                .find_map(|ext| filename.strip_suffix(ext))?;
            stem.rsplit_once('-')?.0.to_string()
        }
    };
    PackageName::from_str(&name).ok()
}

impl Index {
    /// Serve each of `files` as the only file of its project, in place of
    /// the index's page. A file the target cannot use is kept as rejected,
    /// with the reason, as an index file would be.
    pub fn with_direct(mut self, files: Vec<DirectFile>) -> Result<Index, IndexError> {
        for f in files {
            let bad = |message: String| IndexError::Direct {
                requirement: f.requirement.clone(),
                message,
            };
            let filename = f
                .filename()
                .ok_or_else(|| bad(format!("{} names no file", f.url)))?;
            match name_in(&filename) {
                Some(n) if n == f.name => {}
                Some(n) => {
                    return Err(bad(format!(
                        "{filename} is a file of {n}, not of {}",
                        f.name
                    )))
                }
                None => {
                    return Err(bad(format!(
                        "{filename} is not a wheel or an sdist (.whl, .tar.gz, .zip)"
                    )))
                }
            }
            let url = Url::parse(&f.url).map_err(|e| bad(format!("{}: {e}", f.url)))?;
            let json = FileJson {
                filename: filename.as_str().into(),
                url: f.url.as_str().into(),
                hashes: Hashes {
                    sha256: f.sha256.as_ref().map(|h| h.to_string().into()),
                },
                requires_python: None,
                yanked: None,
                core_metadata: None,
                size: f.size,
                upload_time: None,
            };
            let project = self.filter_files(&f.name, &url, vec![json], true)?;
            self.direct.insert(f.name.clone(), Arc::new(project));
        }
        Ok(self)
    }
}

/// The files `requirements` name by URL, each with the sha256 it must have:
/// the URL's `#sha256=`, else the requirement's one `--hash` (`hashes`, by
/// package), else, for a local file, its own (hashed now). A remote file
/// with none is refused unless `allow_unhashed`.
pub async fn direct_files(
    requirements: &[pep508_rs::Requirement<pep508_rs::VerbatimUrl>],
    hashes: &std::collections::BTreeMap<String, Vec<Sha256>>,
    allow_unhashed: bool,
) -> Result<Vec<DirectFile>, IndexError> {
    let mut files = Vec::new();
    for req in requirements {
        let Some(pep508_rs::VersionOrUrl::Url(given)) = &req.version_or_url else {
            continue;
        };
        let bad = |message: String| IndexError::Direct {
            requirement: req.to_string(),
            message,
        };
        let mut url = given.to_url();
        let from_fragment = match url.fragment().and_then(|f| f.strip_prefix("sha256=")) {
            Some(hex) => Some(Sha256::parse(hex).map_err(|e| bad(format!("#sha256=: {e}")))?),
            None => None,
        };
        url.set_fragment(None);
        let pinned = hashes
            .get(req.name.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut sha256 = from_fragment.or_else(|| (pinned.len() == 1).then(|| pinned[0].clone()));
        let mut size = None;
        match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| bad(format!("{url} is not a local path")))?;
                if path.is_dir() {
                    return Err(bad(format!(
                        "{} is a folder; a project folder is bundled by naming it (`bundle build {}`), from its pyproject.toml",
                        path.display(),
                        path.display()
                    )));
                }
                let (actual, len) = hash_file(&path).await.map_err(|e| {
                    bad(format!("cannot read {}: {e}", path.display()))
                })?;
                if let Some(expected) = sha256.as_ref().filter(|h| **h != actual) {
                    return Err(bad(format!(
                        "{} has sha256 {actual}, not the {expected} the requirement gives",
                        path.display()
                    )));
                }
                sha256 = Some(actual);
                size = Some(len);
            }
            "https" | "http" => {
                if sha256.is_none() && !allow_unhashed {
                    return Err(bad(format!(
                        "{url} comes with no sha256: add #sha256=HEX to the URL, or --hash=sha256:HEX after it in a requirements file (--allow-unhashed takes it unverified)"
                    )));
                }
            }
            other => {
                return Err(bad(format!(
                    "{other}: URLs are not supported (only file://, https:// and http://; not VCS URLs)"
                )))
            }
        }
        files.push(DirectFile {
            requirement: req.to_string(),
            name: req.name.clone(),
            url: url.to_string(),
            sha256,
            size,
        });
    }
    Ok(files)
}

/// The sha256 and size of a local file, read in bounded memory.
async fn hash_file(path: &std::path::Path) -> std::io::Result<(Sha256, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || Sha256::of_file(&path))
        .await
        .expect("hashing a file does not panic")
}

impl DirectFile {
    /// Whether the file is an sdist (built in the target's image).
    pub fn is_sdist(&self) -> bool {
        self.filename().is_some_and(|f| !f.ends_with(".whl"))
    }
}
