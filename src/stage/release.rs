//! `[[release]]` recipes: one asset of a release, pinned by sha256, and the
//! members of it that become `bin/<name>`.

use crate::error::Diagnose;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use std::collections::BTreeMap;

use crate::archive::{self, safe_member_path, ArchiveError};
use crate::config::recipe::Release;
use crate::config::target::{Arch, Target};
use crate::fetch::{FetchError, Fetcher};
pub use crate::model::plan::ArchiveKind;
use crate::model::plan::PlannedRelease;
use crate::model::Sha256;

/// Public GitHub API, used for `version = "latest"` on github.com URLs.
pub const GITHUB_API: &str = "https://api.github.com";

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("release `{name}` has neither `sha256` nor `sha256_url`; the file downloaded from {url} has sha256 {actual}")]
    Unpinned {
        name: String,
        url: String,
        actual: String,
    },
    #[error("release `{name}`: {url} holds no sha256 (expected `HASH` or `HASH  FILENAME`)")]
    BadChecksumFile { name: String, url: String },
    #[error("release `{name}`: `sha256 = \"{value}\"` is not 64 hex digits")]
    BadPin { name: String, value: String },
    #[error("release `{name}`: `version = \"{version}\"` is not a version requirement: {message}")]
    BadRequirement {
        name: String,
        version: String,
        message: String,
    },
    #[error("release `{name}`: no release matches `{requirement}`{}", if .nearest.is_empty() { " (the project lists none)".to_string() } else { format!("; the newest are {}", .nearest.join(", ")) })]
    NoMatch {
        name: String,
        requirement: String,
        nearest: Vec<String>,
    },
    #[error("release `{name}`: version \"latest\" needs a github.com release URL, got {url}")]
    LatestNotGithub { name: String, url: String },
    #[error("release `{name}`: cannot read the latest release from {url}")]
    Latest {
        name: String,
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("release `{name}`: unknown placeholder `{{{placeholder}}}` in {template}")]
    Template {
        name: String,
        placeholder: String,
        template: String,
    },
    #[error(
        "release `{name}`: archive member `{member}` would be written outside the bundle ({why})"
    )]
    Unsafe {
        name: String,
        member: String,
        why: String,
    },
    #[error("release `{name}`: `{member}` is not in the archive{}", if .available.is_empty() { String::new() } else { format!(" (it has: {})", .available.join(", ")) })]
    MissingMember {
        name: String,
        member: String,
        available: Vec<String>,
    },
    #[error(
        "release `{name}`: `files` lists `{first}` and `{second}`, which both become bin/{base}"
    )]
    SameBasename {
        name: String,
        first: String,
        second: String,
        base: String,
    },
    #[error("release `{name}`: `{url}` is not a valid http(s) URL")]
    BadUrl { name: String, url: String },
    #[error("release `{name}`: cannot read the archive")]
    BadArchive {
        name: String,
        #[source]
        source: ArchiveError,
    },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for ReleaseError {
    fn hint(&self) -> Option<String> {
        match self {
            ReleaseError::Unpinned { actual, .. } => Some(format!(
                "verify it, then pin it in the recipe: sha256 = \"{actual}\" (or set sha256_url = \"{{url}}.sha256sum\" where the project publishes one)"
            )),
            ReleaseError::Unsafe { .. } => Some("the archive is malformed or malicious; nothing was extracted".into()),
            ReleaseError::MissingMember { .. } => Some("list archive members by their path or file name in `files`".into()),
            ReleaseError::Fetch(_) => Some(
                "check the release's `url` in the recipe and the network; for an air-gapped mirror, set BUNDLE_RELEASE_MIRROR".into(),
            ),
            _ => None,
        }
    }

    /// Errors in the recipe itself (no pin, a member the archive lacks, a
    /// bad URL or template) are bad input; the rest, failed work.
    fn exit_code(&self) -> i32 {
        match self {
            ReleaseError::BadPin { .. }
            | ReleaseError::BadRequirement { .. }
            | ReleaseError::NoMatch { .. }
            | ReleaseError::Unpinned { .. }
            | ReleaseError::MissingMember { .. }
            | ReleaseError::Template { .. }
            | ReleaseError::LatestNotGithub { .. }
            | ReleaseError::SameBasename { .. }
            | ReleaseError::BadUrl { .. } => crate::error::BAD_INPUT,
            ReleaseError::Fetch(e) => e.exit_code(),
            _ => crate::error::WORK_FAILED,
        }
    }
}

fn triple(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-unknown-linux-gnu",
        Arch::Aarch64 => "aarch64-unknown-linux-gnu",
    }
}

/// Expand `{version}`, `{arch}`, `{triple}` (and `{url}` when given).
fn expand(
    name: &str,
    template: &str,
    version: &str,
    arch: Arch,
    url: Option<&str>,
) -> Result<String, ReleaseError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let key = &after[..end];
        let value = match (key, url) {
            ("version", _) => version,
            ("arch", _) => arch.as_str(),
            ("triple", _) => triple(arch),
            ("url", Some(u)) => u,
            _ => {
                return Err(ReleaseError::Template {
                    name: name.to_string(),
                    placeholder: key.to_string(),
                    template: template.to_string(),
                })
            }
        };
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A URL a release may be fetched from: absolute http or https.
fn check_url(name: &str, url: &str) -> Result<(), ReleaseError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(ReleaseError::BadUrl {
            name: name.to_string(),
            url: url.to_string(),
        }),
    }
}

/// Read a checksum file: `HASH` or `HASH  FILENAME` (first hash wins, or the
/// line naming `filename` when there are several).
pub fn parse_checksum_file(text: &str, filename: &str) -> Option<Sha256> {
    // Also tolerated: BSD `SHA256 (file) = HASH` and PowerShell's
    // `Get-FileHash` table, where the hash is not the first word.
    let mut first = None;
    for line in text.lines() {
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '=')
            .filter(|w| !w.is_empty())
            .collect();
        let Some(hash) = words.iter().find_map(|w| Sha256::parse(w).ok()) else {
            continue;
        };
        let names_file = words.iter().any(|w| {
            let w = w.trim_start_matches('*');
            w == filename || w.rsplit(['/', '\\']).next() == Some(filename)
        });
        if names_file {
            return Some(hash);
        }
        first.get_or_insert(hash);
    }
    first
}

/// `owner/repo` of a github.com release URL.
fn github_repo(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("https://github.com/")?;
    let mut parts = rest.split('/');
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
}

/// `version = "^2.1"` (any requirement starting with an operator, or with
/// a comma or `*`): a semver requirement the newest release must match. A
/// plain version (`1.33.1`) is exact, as before.
fn version_requirement(r: &Release) -> Result<Option<semver::VersionReq>, ReleaseError> {
    let v = r.version.trim();
    let is_requirement =
        v.starts_with(['^', '~', '>', '<', '=', '*']) || v.contains(',') || v.contains('*');
    if !is_requirement {
        return Ok(None);
    }
    semver::VersionReq::parse(v)
        .map(Some)
        .map_err(|e| ReleaseError::BadRequirement {
            name: r.name.clone(),
            version: r.version.clone(),
            message: e.to_string(),
        })
}

/// A release as the releases API lists it.
#[derive(Debug, Deserialize)]
struct ApiRelease {
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    #[serde(default)]
    assets: Vec<ApiAsset>,
}

#[derive(Debug, Deserialize)]
struct ApiAsset {
    name: String,
    browser_download_url: String,
}

/// The newest release matching `requirement`: drafts never, pre-releases
/// only when the requirement names one. Else the newest versions, for the
/// error.
fn select<'a>(
    requirement: &semver::VersionReq,
    releases: &'a [ApiRelease],
) -> Result<(semver::Version, &'a ApiRelease), Vec<String>> {
    let wants_pre = requirement.comparators.iter().any(|c| !c.pre.is_empty());
    let mut versions: Vec<(semver::Version, &ApiRelease)> = releases
        .iter()
        .filter(|r| !r.draft)
        .filter_map(|r| {
            let tag = r.tag_name.strip_prefix('v').unwrap_or(&r.tag_name);
            semver::Version::parse(tag).ok().map(|v| (v, r))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions
        .iter()
        .find(|(v, r)| requirement.matches(v) && (wants_pre || (!r.prerelease && v.pre.is_empty())))
        .map(|(v, r)| (v.clone(), *r))
        .ok_or_else(|| {
            versions
                .iter()
                .take(5)
                .map(|(v, _)| v.to_string())
                .collect()
        })
}

/// GET `releases{path}` of the recipe's github.com project from the
/// releases API, parsed.
async fn releases_api<T: serde::de::DeserializeOwned>(
    r: &Release,
    fetcher: &Fetcher,
    github_api: &str,
    path: &str,
) -> Result<T, ReleaseError> {
    let (owner, repo) = github_repo(&r.url).ok_or_else(|| ReleaseError::LatestNotGithub {
        name: r.name.clone(),
        url: r.url.clone(),
    })?;
    let api = format!(
        "{}/repos/{owner}/{repo}/releases{path}",
        github_api.trim_end_matches('/')
    );
    // GITHUB_TOKEN lifts the API's low anonymous rate limit.
    let token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
    let body = fetcher
        .get_with_token(&api, Some("application/vnd.github+json"), token.as_deref())
        .await?;
    serde_json::from_slice(&body).map_err(|source| ReleaseError::Latest {
        name: r.name.clone(),
        url: api,
        source,
    })
}

/// The asset URL of `version`: the one the release lists for the recipe's
/// file name (where its assets are served), else the recipe's URL.
fn asset_url(
    r: &Release,
    release: &ApiRelease,
    version: &str,
    target: &Target,
) -> Result<String, ReleaseError> {
    let templated = expand(&r.name, &r.url, version, target.arch, None)?;
    let file = templated.rsplit('/').next().unwrap_or(&templated);
    Ok(release
        .assets
        .iter()
        .find(|a| a.name == file)
        .map(|a| a.browser_download_url.clone())
        .unwrap_or(templated))
}

/// The newest release of a github.com project matching a requirement, from
/// the releases API: its version and the asset's URL.
async fn matching_release(
    r: &Release,
    requirement: &semver::VersionReq,
    target: &Target,
    fetcher: &Fetcher,
    github_api: &str,
) -> Result<(String, String), ReleaseError> {
    let releases: Vec<ApiRelease> = releases_api(r, fetcher, github_api, "?per_page=100").await?;
    let (version, release) =
        select(requirement, &releases).map_err(|nearest| ReleaseError::NoMatch {
            name: r.name.clone(),
            requirement: r.version.clone(),
            nearest,
        })?;
    let version = version.to_string();
    let url = asset_url(r, release, &version, target)?;
    Ok((version, url))
}

/// The latest release of a github.com project, from the releases API:
/// its version and the asset's URL.
async fn latest_release(
    r: &Release,
    target: &Target,
    fetcher: &Fetcher,
    github_api: &str,
) -> Result<(String, String), ReleaseError> {
    let latest: ApiRelease = releases_api(r, fetcher, github_api, "/latest").await?;
    let version = latest
        .tag_name
        .strip_prefix('v')
        .unwrap_or(&latest.tag_name)
        .to_string();
    let url = asset_url(r, &latest, &version, target)?;
    Ok((version, url))
}

/// Pin a release: expand its URL and find its sha256.
pub async fn plan_release(
    r: &Release,
    target: &Target,
    fetcher: &Fetcher,
    github_api: &str,
    reporter: &dyn crate::report::Reporter,
) -> Result<PlannedRelease, ReleaseError> {
    // A malformed URL is the recipe's fault, found before any network use.
    let probe = if r.version == "latest" || version_requirement(r)?.is_some() {
        "0"
    } else {
        &r.version
    };
    check_url(&r.name, &expand(&r.name, &r.url, probe, target.arch, None)?)?;
    if let Some(t) = &r.sha256_url {
        let url = expand(&r.name, &r.url, probe, target.arch, None)?;
        check_url(
            &r.name,
            &expand(&r.name, t, probe, target.arch, Some(&url))?,
        )?;
    }
    let (version, url) = if r.version == "latest" {
        latest_release(r, target, fetcher, github_api).await?
    } else if let Some(requirement) = version_requirement(r)? {
        matching_release(r, &requirement, target, fetcher, github_api).await?
    } else {
        let url = expand(&r.name, &r.url, &r.version, target.arch, None)?;
        (r.version.clone(), url)
    };
    check_url(&r.name, &url)?;
    let filename = url.rsplit('/').next().unwrap_or(&url).to_string();
    let sha256 = if let Some(pin) = &r.sha256 {
        Sha256::parse(pin).map_err(|_| ReleaseError::BadPin {
            name: r.name.clone(),
            value: pin.clone(),
        })?
    } else if let Some(t) = &r.sha256_url {
        let sum_url = expand(&r.name, t, &version, target.arch, Some(&url))?;
        check_url(&r.name, &sum_url)?;
        let body = fetcher.get(&fetcher.mirrored(&sum_url), None).await?;
        parse_checksum_file(&String::from_utf8_lossy(&body), &filename).ok_or(
            ReleaseError::BadChecksumFile {
                name: r.name.clone(),
                url: sum_url,
            },
        )?
    } else {
        let blob = fetcher
            .download(&fetcher.mirrored(&url), None, None, &filename)
            .await?;
        if !fetcher.allow_unhashed() {
            return Err(ReleaseError::Unpinned {
                name: r.name.clone(),
                url,
                actual: blob.sha256.to_string(),
            });
        }
        reporter.warn(&format!(
            "release `{}` is not pinned; --allow-unhashed takes {filename} as downloaded (sha256 {})",
            r.name, blob.sha256
        ));
        blob.sha256
    };
    Ok(PlannedRelease {
        name: r.name.clone(),
        version,
        archive: ArchiveKind::from_url(&url),
        url,
        sha256,
        files: r.files.clone(),
    })
}

/// Extract the release's `files` from the cached asset into `dest_dir/<basename>`,
/// executable. Returns the written paths (relative names). Only the wanted
/// members are unpacked, streamed to disk under the archive limits.
pub fn extract(
    release: &PlannedRelease,
    asset: &Path,
    dest_dir: &Path,
) -> Result<Vec<String>, ReleaseError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReleaseError::Io { path, source }
    };
    let name = &release.name;
    let archive_err = |e: ArchiveError| match e {
        ArchiveError::Unsafe { member, why } => ReleaseError::Unsafe {
            name: name.clone(),
            member,
            why,
        },
        source => ReleaseError::BadArchive {
            name: name.clone(),
            source,
        },
    };
    std::fs::create_dir_all(dest_dir).map_err(io(dest_dir))?;
    let bases = wanted_basenames(release)?;
    if release.archive == ArchiveKind::Bare {
        let base = bases.into_keys().next().expect("one file");
        let dest = dest_dir.join(&base);
        std::fs::copy(asset, &dest).map_err(io(&dest))?;
        crate::fsutil::set_mode(&dest, 0o755).map_err(io(&dest))?;
        return Ok(vec![base]);
    }
    let limits = crate::archive::Limits::from_env();
    let listing = archive::list(release.archive, asset, limits).map_err(archive_err)?;
    let sources = locate_members(release, &listing, &bases).map_err(|e| match e {
        Located::Release(e) => e,
        Located::Archive(e) => archive_err(e),
    })?;
    let mut written = Vec::new();
    archive::stream_files(
        release.archive,
        asset,
        limits,
        &|p| sources.contains_key(p),
        &mut |p, reader| {
            let bases = &sources[p];
            let first = dest_dir.join(&bases[0]);
            archive::write_member(reader, &first)?;
            for other in &bases[1..] {
                std::fs::copy(&first, dest_dir.join(other))
                    .map_err(|e| ArchiveError::Bad(e.to_string()))?;
            }
            written.extend(bases.iter().cloned());
            Ok(())
        },
    )
    .map_err(archive_err)?;
    for base in &written {
        let dest = dest_dir.join(base);
        crate::fsutil::set_mode(&dest, 0o755).map_err(io(&dest))?;
    }
    written.sort();
    Ok(written)
}

/// Each wanted file becomes `bin/<basename>`: basename → the `files`
/// entry. Two with one basename would overwrite each other: an error.
fn wanted_basenames(release: &PlannedRelease) -> Result<BTreeMap<String, String>, ReleaseError> {
    let name = &release.name;
    let wanted: Vec<String> = if release.archive == ArchiveKind::Bare {
        vec![release.files.first().cloned().unwrap_or(name.clone())]
    } else {
        release.files.clone()
    };
    let mut bases = BTreeMap::new();
    for want in &wanted {
        let base = safe_basename(name, want)?;
        if let Some(first) = bases.insert(base.clone(), want.clone()) {
            return Err(ReleaseError::SameBasename {
                name: name.clone(),
                first,
                second: want.clone(),
                base,
            });
        }
    }
    Ok(bases)
}

enum Located {
    Release(ReleaseError),
    Archive(ArchiveError),
}

/// The archive member (after following links) each wanted file comes from:
/// member → the basenames it becomes. A file is found by its path, or by
/// its name when one member alone has it.
fn locate_members(
    release: &PlannedRelease,
    listing: &archive::Listing,
    bases: &BTreeMap<String, String>,
) -> Result<BTreeMap<PathBuf, Vec<String>>, Located> {
    let name = &release.name;
    let mut sources: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for (base, want) in bases {
        let wanted = safe_member_path(want).map_err(|why| {
            Located::Release(ReleaseError::Unsafe {
                name: name.clone(),
                member: want.clone(),
                why,
            })
        })?;
        let found = if listing.members.contains_key(&wanted) {
            Some(wanted.clone())
        } else {
            let mut by_name = listing
                .members
                .keys()
                .filter(|k| k.file_name() == wanted.file_name());
            match (by_name.next(), by_name.next()) {
                (Some(one), None) => Some(one.clone()),
                _ => None,
            }
        };
        let missing = |member: String, available: Vec<String>| {
            Located::Release(ReleaseError::MissingMember {
                name: name.clone(),
                member,
                available,
            })
        };
        let Some(key) = found else {
            let available = listing
                .members
                .keys()
                .take(20)
                .map(|k| k.display().to_string())
                .collect();
            return Err(missing(want.clone(), available));
        };
        let file = listing
            .resolve(&key)
            .map_err(Located::Archive)?
            .ok_or_else(|| missing(key.display().to_string(), Vec::new()))?;
        sources.entry(file).or_default().push(base.clone());
    }
    Ok(sources)
}

fn safe_basename(name: &str, member: &str) -> Result<String, ReleaseError> {
    Path::new(member)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| s != ".." && s != ".")
        .ok_or_else(|| ReleaseError::Unsafe {
            name: name.to_string(),
            member: member.to_string(),
            why: "no file name".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand() {
        let u = expand(
            "deno",
            "https://x/v{version}/deno-{triple}.zip",
            "1.33.1",
            Arch::X86_64,
            None,
        )
        .unwrap();
        assert_eq!(u, "https://x/v1.33.1/deno-x86_64-unknown-linux-gnu.zip");
        let s = expand("deno", "{url}.sha256sum", "1", Arch::Aarch64, Some(&u)).unwrap();
        assert!(s.ends_with(".zip.sha256sum"));
        assert_eq!(
            expand("t", "a-{arch}", "1", Arch::Aarch64, None).unwrap(),
            "a-aarch64"
        );
        assert!(expand("t", "a-{os}", "1", Arch::X86_64, None).is_err());
    }

    #[test]
    fn checksum_files() {
        let h = "a".repeat(64);
        let got = |t: &str, f: &str| parse_checksum_file(t, f).map(|h| h.to_string());
        assert_eq!(got(&h, "x.zip").unwrap(), h);
        let two = format!("{}  other.zip\n{}  x.zip\n", "b".repeat(64), h);
        assert_eq!(got(&two, "x.zip").unwrap(), h);
        assert_eq!(got(&format!("{h} *x.zip"), "x.zip").unwrap(), h);
        assert!(got("not a hash", "x").is_none());
        // A path-like or short "hash" is never taken.
        assert!(got(&format!("../../{}  x.zip", "a".repeat(58)), "x.zip").is_none());
        let bsd = format!("SHA256 (x.zip) = {}", h.to_uppercase());
        assert_eq!(got(&bsd, "x.zip").unwrap(), h);
        let ps = format!(
            "\nAlgorithm  Hash  Path\n---------  ----  ----\nSHA256  {}  C:\\a\\x.zip\n",
            h.to_uppercase()
        );
        assert_eq!(got(&ps, "x.zip").unwrap(), h);
    }
}

#[cfg(test)]
mod semver_tests {
    use super::*;

    fn release(tag: &str, draft: bool, prerelease: bool) -> ApiRelease {
        ApiRelease {
            tag_name: tag.into(),
            draft,
            prerelease,
            assets: Vec::new(),
        }
    }

    #[test]
    fn the_newest_match_skipping_drafts_and_pre_releases() {
        let releases = [
            release("v14.1.1", false, false),
            release("v15.0.0-rc.1", false, true),
            release("v14.2.0", true, false),
            release("14.1.0", false, false),
            release("v13.0.0", false, false),
            release("nightly", false, true),
        ];
        let req = |s: &str| semver::VersionReq::parse(s).unwrap();
        assert_eq!(
            select(&req("^14"), &releases).unwrap().0.to_string(),
            "14.1.1"
        );
        assert_eq!(
            select(&req("~14.1.0, <14.1.1"), &releases)
                .unwrap()
                .0
                .to_string(),
            "14.1.0"
        );
        assert_eq!(
            select(&req(">=14"), &releases).unwrap().0.to_string(),
            "14.1.1"
        );
        // A pre-release only when asked for.
        assert_eq!(
            select(&req(">=15.0.0-rc.1"), &releases)
                .unwrap()
                .0
                .to_string(),
            "15.0.0-rc.1"
        );
        // No match: the newest versions, for the error.
        let nearest = select(&req("^16"), &releases).unwrap_err();
        assert_eq!(nearest, ["15.0.0-rc.1", "14.1.1", "14.1.0", "13.0.0"]);
    }

    #[test]
    fn only_operators_make_a_requirement() {
        let r = |v: &str| Release {
            name: "x".into(),
            version: v.into(),
            url: "https://github.com/a/b/x".into(),
            sha256: None,
            sha256_url: None,
            files: Vec::new(),
            check: Vec::new(),
        };
        assert!(version_requirement(&r("1.33.1")).unwrap().is_none());
        assert!(version_requirement(&r("^2.1")).unwrap().is_some());
        assert!(version_requirement(&r(">=1, <2")).unwrap().is_some());
        assert!(version_requirement(&r("^two")).is_err());
    }
}
