//! A project page of the index, seen through the target's eyes: which
//! files the target can install, which it cannot and why.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::PackageName;
use reqwest::Url;
use serde::Deserialize;

use crate::fetch::FetchError;
use crate::model::hash::Sha256;
use crate::resolve::tags::WheelName;

use super::{Candidate, Index, IndexError, Project, Rejected, WheelFile, ACCEPT_JSON};

// A page's strings are borrowed from its body where they hold no escapes:
// a big project lists thousands of files, nearly all of them rejected.
#[derive(Deserialize)]
pub(super) struct PageJson<'a> {
    #[serde(default, borrow)]
    files: Vec<FileJson<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum BoolOrString<'a> {
    Bool(bool),
    String(#[serde(borrow)] Cow<'a, str>),
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum BoolOrHashes<'a> {
    Bool(bool),
    Hashes(#[serde(borrow)] Hashes<'a>),
}

/// The digests of a file; only sha256 is used.
#[derive(Deserialize, Default)]
pub(super) struct Hashes<'a> {
    #[serde(default, borrow)]
    pub(super) sha256: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct FileJson<'a> {
    #[serde(borrow)]
    pub(super) filename: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) url: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) hashes: Hashes<'a>,
    #[serde(default, borrow, rename = "requires-python")]
    pub(super) requires_python: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) yanked: Option<BoolOrString<'a>>,
    #[serde(
        default,
        borrow,
        rename = "core-metadata",
        alias = "data-dist-info-metadata"
    )]
    pub(super) core_metadata: Option<BoolOrHashes<'a>>,
    #[serde(default)]
    pub(super) size: Option<u64>,
    #[serde(default, borrow, rename = "upload-time")]
    pub(super) upload_time: Option<Cow<'a, str>>,
}

impl Index {
    pub(super) async fn load_project(&self, name: &PackageName) -> Result<Project, IndexError> {
        self.reporter.resolving(name.as_ref());
        let url = self
            .base
            .join(&format!("{name}/"))
            .map_err(|_| IndexError::BadIndexUrl(self.base.to_string()))?;
        let body = match self.fetcher.get_page(url.as_str(), ACCEPT_JSON).await {
            Ok(b) => b,
            Err(FetchError::NotFound { .. }) => {
                return Err(IndexError::NotFound {
                    name: name.to_string(),
                    index: self.base.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        self.parse_page(name, &url, &body)
    }

    /// A project page's body, read and filtered for the target.
    pub fn parse_page(
        &self,
        name: &PackageName,
        url: &Url,
        body: &[u8],
    ) -> Result<Project, IndexError> {
        let page: PageJson =
            serde_json::from_slice(body).map_err(|source| IndexError::BadPage {
                url: url.to_string(),
                source,
            })?;
        self.filter_files(name, url, page.files, false)
    }

    pub(super) fn filter_files(
        &self,
        name: &PackageName,
        page_url: &Url,
        files: Vec<FileJson<'_>>,
        direct: bool,
    ) -> Result<Project, IndexError> {
        let mut candidates: BTreeMap<Version, Candidate> = BTreeMap::new();
        let mut rejected = Vec::new();
        let file_count = files.len();
        for f in files {
            let (version, file) = match self.classify(page_url, f, direct)? {
                Verdict::Usable(version, file) => (version, file),
                Verdict::Rejected(r) => {
                    rejected.push(r);
                    continue;
                }
                Verdict::Ignored => continue,
            };
            // The best file of each version: not yanked, best tag, then name.
            match candidates.get_mut(&version) {
                Some(c) => {
                    let key = |w: &WheelFile| (w.yanked.is_some(), w.priority, w.filename.clone());
                    if key(&file) < key(&c.wheel) {
                        c.wheel = file;
                    }
                }
                None => {
                    candidates.insert(
                        version.clone(),
                        Candidate {
                            version,
                            wheel: file,
                        },
                    );
                }
            }
        }
        Ok(Project {
            name: name.clone(),
            candidates,
            rejected,
            file_count,
        })
    }

    /// What the target makes of one file of a project page. A hash that is
    /// not 64 hex digits is an error: the page is broken or hostile.
    fn classify(
        &self,
        page_url: &Url,
        f: FileJson<'_>,
        direct: bool,
    ) -> Result<Verdict, IndexError> {
        let reject = |version: Option<Version>, reason: String| {
            Ok(Verdict::Rejected(Rejected {
                version,
                filename: f.filename.to_string(),
                reason,
            }))
        };
        // The name becomes a path in the bundle: it must be a plain file name.
        if f.filename.is_empty()
            || f.filename.starts_with('.')
            || f.filename.contains(['/', '\\', '\0'])
        {
            return reject(None, "not a plain file name".into());
        }
        let parsed = WheelName::parse(&f.filename);
        let version = match &parsed {
            Some(wheel) => match Version::from_str(&wheel.version) {
                Ok(v) => v,
                Err(_) => return Ok(Verdict::Ignored),
            },
            None => match sdist_version(&f.filename) {
                Some(v) if self.builds(&f.filename, direct) => v,
                Some(v) => {
                    return reject(
                        Some(v),
                        "source distribution (wheels only: --sdists build, or sdists = \"build\" in a recipe, builds it in the target's image)".into(),
                    )
                }
                None => {
                    let kind = f.filename.rsplit('.').next().unwrap_or("");
                    return reject(None, format!("not a wheel (.{kind})"));
                }
            },
        };
        if let (Some(cutoff), Some(uploaded)) = (&self.exclude_newer, &f.upload_time) {
            if !uploaded_before(uploaded, cutoff) {
                return reject(
                    Some(version),
                    format!("uploaded {uploaded}, after exclude_newer {cutoff}"),
                );
            }
        }
        let priority = match self.priority(parsed.as_ref(), &f.filename) {
            Ok(p) => p,
            Err(reason) => return reject(Some(version), reason),
        };
        if let Some(rp) = f.requires_python.as_deref() {
            if python_excluded(rp, &self.python) {
                return reject(
                    Some(version),
                    format!("Requires-Python {rp} excludes Python {}", self.python),
                );
            }
        }
        let Ok(mut url) = page_url.join(&f.url) else {
            return Ok(Verdict::Ignored);
        };
        url.set_fragment(None);
        let (sha256, core_metadata) = file_hashes(page_url, &f)?;
        if sha256.is_none() && !self.fetcher.allow_unhashed() {
            return reject(
                Some(version),
                "the index gives no sha256 (pass --allow-unhashed to accept it)".into(),
            );
        }
        let yanked = match &f.yanked {
            Some(BoolOrString::Bool(true)) => Some(String::new()),
            Some(BoolOrString::String(s)) => Some(s.to_string()),
            _ => None,
        };
        let file = WheelFile {
            filename: f.filename.to_string(),
            sdist: parsed.is_none(),
            url: url.to_string(),
            sha256,
            size: f.size,
            core_metadata,
            yanked,
            requires_python: f.requires_python.as_deref().map(str::to_string),
            priority,
        };
        Ok(Verdict::Usable(version, file))
    }

    /// Where a file stands in the target's tag order (an sdist last), or
    /// why its tag does not fit the target.
    fn priority(&self, parsed: Option<&WheelName>, filename: &str) -> Result<usize, String> {
        let Some(wheel) = parsed else {
            return Ok(usize::MAX);
        };
        self.tags.priority(wheel).ok_or_else(|| {
            // The tag as the file name spells it (its last three parts).
            let stem = filename.strip_suffix(".whl").unwrap_or(filename);
            let tag = stem
                .rmatch_indices('-')
                .nth(2)
                .map_or(stem, |(i, _)| &stem[i + 1..]);
            format!("tag {tag} does not fit the target")
        })
    }

    /// Whether an sdist of this name can be built here.
    fn builds(&self, filename: &str, direct: bool) -> bool {
        self.sdists.is_some()
            && (direct || self.index_sdists)
            && (filename.ends_with(".tar.gz") || filename.ends_with(".zip"))
    }
}

/// What the target makes of one file of a project page.
pub(super) enum Verdict {
    Usable(Version, WheelFile),
    Rejected(Rejected),
    /// Not a file the target could use, and not worth a line in the report.
    Ignored,
}

/// The file's sha256 and its PEP 658 metadata hash, each only as 64 hex
/// digits; anything else is an error naming the page and the file.
type FileHashes = (Option<Sha256>, Option<Option<Sha256>>);

fn file_hashes(page_url: &Url, f: &FileJson<'_>) -> Result<FileHashes, IndexError> {
    let bad_hash = |what, source| IndexError::BadHash {
        url: page_url.to_string(),
        file: f.filename.to_string(),
        what,
        source,
    };
    let core_metadata = match &f.core_metadata {
        Some(BoolOrHashes::Bool(true)) => Some(None),
        Some(BoolOrHashes::Hashes(h)) => Some(
            h.sha256
                .as_deref()
                .map(Sha256::parse)
                .transpose()
                .map_err(|e| bad_hash("core-metadata sha256", e))?,
        ),
        _ => None,
    };
    let sha256 = f
        .hashes
        .sha256
        .as_deref()
        .map(Sha256::parse)
        .transpose()
        .map_err(|e| bad_hash("sha256", e))?;
    Ok((sha256, core_metadata))
}

/// A Requires-Python value excludes `python`. Empty or unparsable values
/// exclude nothing, as with pip.
pub fn python_excluded(requires_python: &str, python: &Version) -> bool {
    !requires_python.trim().is_empty()
        && VersionSpecifiers::from_str(requires_python).is_ok_and(|spec| !spec.contains(python))
}

/// `uploaded` (RFC 3339) is not after `cutoff` (RFC 3339 or a date, inclusive).
pub(super) fn uploaded_before(uploaded: &str, cutoff: &str) -> bool {
    crate::config::dates::uploaded_by(uploaded, cutoff)
}

/// Version of a source distribution (`name-1.0.tar.gz`), if it is one.
pub(super) fn sdist_version(filename: &str) -> Option<Version> {
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))?;
    let (_, v) = stem.rsplit_once('-')?;
    Version::from_str(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_newer_compares_dates() {
        assert!(uploaded_before("2023-05-03T10:00:00Z", "2023-05-03"));
        assert!(!uploaded_before("2023-05-04T00:00:01Z", "2023-05-03"));
        assert!(uploaded_before(
            "2023-05-03T10:00:00Z",
            "2023-05-03T11:00:00Z"
        ));
    }
}
