//! Crates for `[[build]] crate = ...`: the version chosen in cargo's sparse
//! index (a semver requirement, yanked versions skipped), the `.crate`
//! file checked against the index's checksum, and every dependency its own
//! `Cargo.lock` pins, each checked against the lock's checksum. All through
//! the fetch layer: cached, verified, `--offline` honoured.

use crate::error::Diagnose;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::archive::{self, ArchiveError};
use crate::fetch::{Blob, FetchError, Fetcher};
use crate::model::plan::ArchiveKind;
use crate::model::Sha256;

/// crates.io's sparse index.
pub const CRATES_INDEX: &str = "https://index.crates.io/";

/// The sources a `Cargo.lock` names for crates.io.
const CRATES_IO_SOURCES: &[&str] = &[
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

#[derive(Debug, thiserror::Error)]
pub enum CrateError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("`{requirement}` is not a semver requirement (crate `{krate}`): {message}")]
    BadRequirement {
        krate: String,
        requirement: String,
        message: String,
    },
    #[error("no version of crate `{krate}` matches `{requirement}`{}", nearest_list(.nearest))]
    NoMatch {
        krate: String,
        requirement: String,
        nearest: Vec<String>,
    },
    #[error("there is no crate `{krate}` in the index at {index}")]
    Unknown { krate: String, index: String },
    #[error("{url}: {message}")]
    BadIndex { url: String, message: String },
    #[error("crate {krate} {version} ships no Cargo.lock, so its dependencies are not pinned")]
    NoLock { krate: String, version: String },
    #[error("the Cargo.lock of crate {krate} {version}: {message}")]
    BadLock {
        krate: String,
        version: String,
        message: String,
    },
    #[error(
        "crate {krate} {version} takes {dependency} from {source_id}, which bundle cannot fetch"
    )]
    OtherSource {
        krate: String,
        version: String,
        dependency: String,
        source_id: String,
    },
    #[error("crate file {file}")]
    Archive {
        file: String,
        #[source]
        source: ArchiveError,
    },
}

fn nearest_list(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!(" (newest versions: {})", nearest.join(", "))
    }
}

impl Diagnose for CrateError {
    fn hint(&self) -> Option<String> {
        match self {
            CrateError::Fetch(e) => e.hint(),
            CrateError::NoMatch { .. } | CrateError::BadRequirement { .. } => Some(
                "write `version` as a semver requirement such as \"^14\" or \"=14.1.1\" (pre-releases only when the requirement names one)".into(),
            ),
            CrateError::Unknown { .. } => Some(
                "check the crate's name (as on crates.io; `-` and `_` differ here)".into(),
            ),
            CrateError::NoLock { .. } => Some(
                "bundle builds a crate with the dependencies its own Cargo.lock pins; use a crate that publishes one (most binary crates do), or a [[build]] with `url` and a `script`".into(),
            ),
            CrateError::OtherSource { .. } => Some(
                "only crates.io dependencies can be fetched and verified; build it from a source archive with a [[build]] `url` and `script` instead".into(),
            ),
            _ => None,
        }
    }

    fn exit_code(&self) -> i32 {
        match self {
            CrateError::Fetch(e) => e.exit_code(),
            CrateError::NoMatch { .. }
            | CrateError::Unknown { .. }
            | CrateError::BadRequirement { .. }
            | CrateError::NoLock { .. }
            | CrateError::OtherSource { .. } => crate::error::BAD_INPUT,
            _ => crate::error::WORK_FAILED,
        }
    }
}

/// One version of a crate, as a line of the sparse index gives it.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexEntry {
    pub name: String,
    pub vers: String,
    pub cksum: String,
    #[serde(default)]
    pub yanked: bool,
}

/// The index's file for a crate: `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…`.
pub fn index_path(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.len() {
        1 => format!("1/{n}"),
        2 => format!("2/{n}"),
        3 => format!("3/{}/{n}", &n[..1]),
        _ => format!("{}/{}/{n}", &n[..2], &n[2..4]),
    }
}

/// A version requirement (`^14`, `=1.2.3`, `*`); a bare version means `^`
/// as in Cargo.toml.
pub fn requirement(krate: &str, text: &str) -> Result<semver::VersionReq, CrateError> {
    semver::VersionReq::parse(text.trim()).map_err(|e| CrateError::BadRequirement {
        krate: krate.to_string(),
        requirement: text.to_string(),
        message: e.to_string(),
    })
}

/// The newest version matching `req`, never a yanked one, and a
/// pre-release only when the requirement names one. Else the newest
/// versions there are, for the error.
pub fn select<'a>(
    req: &semver::VersionReq,
    entries: &'a [IndexEntry],
) -> Result<(semver::Version, &'a IndexEntry), Vec<String>> {
    let wants_pre = req.comparators.iter().any(|c| !c.pre.is_empty());
    let mut versions: Vec<(semver::Version, &IndexEntry)> = entries
        .iter()
        .filter(|e| !e.yanked)
        .filter_map(|e| semver::Version::parse(&e.vers).ok().map(|v| (v, e)))
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions
        .iter()
        .find(|(v, _)| req.matches(v) && (wants_pre || v.pre.is_empty()))
        .map(|(v, e)| (v.clone(), *e))
        .ok_or_else(|| {
            versions
                .iter()
                .filter(|(v, _)| wants_pre || v.pre.is_empty())
                .take(5)
                .map(|(v, _)| v.to_string())
                .collect()
        })
}

/// Parse an index file: one JSON object per line.
pub fn parse_index(url: &str, text: &str) -> Result<Vec<IndexEntry>, CrateError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| CrateError::BadIndex {
                url: url.to_string(),
                message: format!("a line is not a crate version: {e}"),
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct IndexConfig {
    dl: String,
}

/// The `.crate` URL of a version, from the index's `dl` template.
pub fn download_url(dl: &str, name: &str, version: &str, cksum: &str) -> String {
    let markers = [
        "{crate}",
        "{version}",
        "{prefix}",
        "{lowerprefix}",
        "{sha256-checksum}",
    ];
    if !markers.iter().any(|m| dl.contains(m)) {
        return format!("{}/{name}/{version}/download", dl.trim_end_matches('/'));
    }
    let prefix = index_path(name);
    let prefix = prefix.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    dl.replace("{crate}", name)
        .replace("{version}", version)
        .replace("{lowerprefix}", &prefix.to_ascii_lowercase())
        .replace("{prefix}", prefix)
        .replace("{sha256-checksum}", cksum)
}

/// A registry, by its sparse index URL.
pub struct Registry<'a> {
    pub index: String,
    fetcher: &'a Fetcher,
    dl: std::sync::OnceLock<String>,
}

/// A crate version chosen: its version, `.crate` URL and checksum.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub version: String,
    pub url: String,
    pub sha256: Sha256,
}

impl<'a> Registry<'a> {
    pub fn new(index: &str, fetcher: &'a Fetcher) -> Registry<'a> {
        let index = index.strip_prefix("sparse+").unwrap_or(index);
        Registry {
            index: format!("{}/", index.trim_end_matches('/')),
            fetcher,
            dl: std::sync::OnceLock::new(),
        }
    }

    async fn dl(&self) -> Result<&str, CrateError> {
        if let Some(d) = self.dl.get() {
            return Ok(d);
        }
        let url = format!("{}config.json", self.index);
        let body = self.fetcher.get_page(&url, "application/json").await?;
        let config: IndexConfig =
            serde_json::from_slice(&body).map_err(|e| CrateError::BadIndex {
                url: url.clone(),
                message: format!("not a registry config: {e}"),
            })?;
        Ok(self.dl.get_or_init(|| config.dl))
    }

    /// The versions the index lists for `name`.
    pub async fn versions(&self, name: &str) -> Result<Vec<IndexEntry>, CrateError> {
        let url = format!("{}{}", self.index, index_path(name));
        let body = match self.fetcher.get_page(&url, "text/plain").await {
            Err(FetchError::NotFound { .. }) => {
                return Err(CrateError::Unknown {
                    krate: name.to_string(),
                    index: self.index.clone(),
                })
            }
            other => other?,
        };
        parse_index(&url, &String::from_utf8_lossy(&body))
    }

    /// The newest version of `name` matching `version` (a requirement).
    pub async fn choose(&self, name: &str, version: &str) -> Result<Chosen, CrateError> {
        let req = requirement(name, version)?;
        let entries = self.versions(name).await?;
        let (v, entry) = select(&req, &entries).map_err(|nearest| CrateError::NoMatch {
            krate: name.to_string(),
            requirement: version.to_string(),
            nearest,
        })?;
        let sha256 = Sha256::parse(&entry.cksum).map_err(|_| CrateError::BadIndex {
            url: format!("{}{}", self.index, index_path(name)),
            message: format!("{} {v} has no valid sha256 checksum", entry.name),
        })?;
        let version = v.to_string();
        Ok(Chosen {
            url: download_url(self.dl().await?, &entry.name, &version, &entry.cksum),
            version,
            sha256,
        })
    }

    /// Download a `.crate` file, checked against `sha256`.
    pub async fn download(
        &self,
        name: &str,
        version: &str,
        sha256: &Sha256,
    ) -> Result<Blob, CrateError> {
        let url = download_url(self.dl().await?, name, version, &sha256.to_string());
        let label = format!("{name}-{version}.crate");
        Ok(self
            .fetcher
            .download(&url, Some(sha256), None, &label)
            .await?)
    }
}

/// A registry dependency a `Cargo.lock` pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub name: String,
    pub version: String,
    pub sha256: Sha256,
}

#[derive(Debug, Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Debug, Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    checksum: Option<String>,
}

/// The crates.io packages of a `Cargo.lock` (path members left out: they
/// are in the crate itself), each with its checksum.
pub fn locked_dependencies(
    krate: &str,
    version: &str,
    text: &str,
) -> Result<Vec<Locked>, CrateError> {
    let bad = |message: String| CrateError::BadLock {
        krate: krate.to_string(),
        version: version.to_string(),
        message,
    };
    let lock: LockFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for p in lock.package {
        let Some(source) = p.source else { continue };
        if !CRATES_IO_SOURCES.contains(&source.as_str()) {
            return Err(CrateError::OtherSource {
                krate: krate.to_string(),
                version: version.to_string(),
                dependency: format!("{} {}", p.name, p.version),
                source_id: source,
            });
        }
        let sum = p.checksum.ok_or_else(|| {
            bad(format!(
                "{} {} has no checksum (an old lock format?)",
                p.name, p.version
            ))
        })?;
        let sha256 = Sha256::parse(&sum)
            .map_err(|_| bad(format!("{} {}: `{sum}` is not a sha256", p.name, p.version)))?;
        out.push(Locked {
            name: p.name,
            version: p.version,
            sha256,
        });
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out.dedup();
    Ok(out)
}

/// The `Cargo.lock` inside a `.crate` file (`NAME-VERSION/Cargo.lock`).
pub fn lock_of(krate: &str, version: &str, file: &Path) -> Result<String, CrateError> {
    let wanted = PathBuf::from(format!("{krate}-{version}")).join("Cargo.lock");
    let found = archive::read_member(
        ArchiveKind::TarGz,
        file,
        archive::Limits::from_env(),
        &|p| p == wanted,
        16 << 20,
    )
    .map_err(|source| CrateError::Archive {
        file: format!("{krate}-{version}.crate"),
        source,
    })?;
    let (_, data) = found.ok_or_else(|| CrateError::NoLock {
        krate: krate.to_string(),
        version: version.to_string(),
    })?;
    Ok(String::from_utf8_lossy(&data).into_owned())
}

/// Every `.crate` a build of `krate` needs: the crate itself, then its
/// locked dependencies, all verified and cached.
pub async fn fetch_all(
    registry: &Registry<'_>,
    krate: &str,
    version: &str,
    sha256: &Sha256,
) -> Result<Vec<(Locked, Blob)>, CrateError> {
    let main = registry.download(krate, version, sha256).await?;
    let deps = locked_dependencies(krate, version, &lock_of(krate, version, &main.path)?)?;
    let mut out = vec![(
        Locked {
            name: krate.to_string(),
            version: version.to_string(),
            sha256: sha256.clone(),
        },
        main,
    )];
    let fetched = futures_util::future::join_all(
        deps.iter()
            .map(|d| registry.download(&d.name, &d.version, &d.sha256)),
    )
    .await;
    for (d, blob) in deps.into_iter().zip(fetched) {
        out.push((d, blob?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(vers: &str, yanked: bool) -> IndexEntry {
        IndexEntry {
            name: "rg".into(),
            vers: vers.into(),
            cksum: "0".repeat(64),
            yanked,
        }
    }

    #[test]
    fn the_newest_match_skipping_yanked_and_pre_releases() {
        let entries = vec![
            entry("13.0.0", false),
            entry("14.0.0", false),
            entry("14.1.1", false),
            entry("14.2.0", true),
            entry("15.0.0-beta.1", false),
            entry("15.0.0", false),
        ];
        let pick = |r: &str| {
            select(&requirement("rg", r).unwrap(), &entries)
                .map(|(v, _)| v.to_string())
                .map_err(|n| n.join(" "))
        };
        assert_eq!(pick("^14").unwrap(), "14.1.1", "14.2.0 is yanked");
        assert_eq!(pick("*").unwrap(), "15.0.0");
        assert_eq!(pick("=15.0.0-beta.1").unwrap(), "15.0.0-beta.1");
        assert_eq!(pick(">=15.0.0-beta.1, <15.0.0").unwrap(), "15.0.0-beta.1");
        assert_eq!(pick("14.0").unwrap(), "14.1.1", "a bare version is ^");
        let nearest = pick("^16").unwrap_err();
        assert_eq!(nearest, "15.0.0 14.1.1 14.0.0 13.0.0");
        let err = CrateError::NoMatch {
            krate: "rg".into(),
            requirement: "^16".into(),
            nearest: nearest.split(' ').map(str::to_string).collect(),
        };
        assert_eq!(
            err.to_string(),
            "no version of crate `rg` matches `^16` (newest versions: 15.0.0, 14.1.1, 14.0.0, 13.0.0)"
        );
        assert!(requirement("rg", "fourteen").is_err());
    }

    #[test]
    fn index_paths_and_download_urls() {
        assert_eq!(index_path("a"), "1/a");
        assert_eq!(index_path("ab"), "2/ab");
        assert_eq!(index_path("abc"), "3/a/abc");
        assert_eq!(index_path("RipGrep"), "ri/pg/ripgrep");
        assert_eq!(
            download_url("http://127.0.0.1:1/dl", "serde", "1.0.0", "ff"),
            "http://127.0.0.1:1/dl/serde/1.0.0/download"
        );
        assert_eq!(
            download_url(
                "http://127.0.0.1:1/c/{prefix}/{crate}-{version}.crate?{sha256-checksum}",
                "serde",
                "1.0.0",
                "ff"
            ),
            "http://127.0.0.1:1/c/se/rd/serde-1.0.0.crate?ff"
        );
    }

    #[test]
    fn a_lock_gives_its_crates_io_packages_with_checksums() {
        let sum = "a".repeat(64);
        let lock = format!(
            r#"version = 3
[[package]]
name = "app"
version = "0.1.0"
dependencies = ["dep"]

[[package]]
name = "dep"
version = "1.2.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{sum}"
"#
        );
        let deps = locked_dependencies("app", "0.1.0", &lock).unwrap();
        assert_eq!(deps.len(), 1);
        assert_eq!(deps[0].name, "dep");
        assert_eq!(deps[0].sha256.to_string(), sum);
        let git = lock.replace(
            "registry+https://github.com/rust-lang/crates.io-index",
            "git+https://127.0.0.1/x#abc",
        );
        assert!(matches!(
            locked_dependencies("app", "0.1.0", &git),
            Err(CrateError::OtherSource { .. })
        ));
        let unsummed = lock.replace(&format!("checksum = \"{sum}\""), "");
        assert!(matches!(
            locked_dependencies("app", "0.1.0", &unsummed),
            Err(CrateError::BadLock { .. })
        ));
    }
}
