//! The apt plan: the target's package lists (fetched once a day, kept in
//! the cache) and the exact `.deb` files a recipe installs, pinned,
//! downloaded through the cache and put in place for an offline install.

use std::collections::BTreeMap;
use std::path::Path;

use super::{quoted, AptError};
use crate::config::recipe::Apt;
use crate::config::target::Target;
use crate::docker::sandbox::{self, APT_ENV};
use crate::docker::Run;
use crate::docker::{ContainerSpec, DockerError, Engine, ExecOptions};
use crate::model::manifest::{AptPackage, Link};
use crate::report::{Reporter, Step};

/// apt keeps its package lists gzipped (smaller to cache).
pub(super) const LISTS_OPTS: &str =
    "-o Acquire::GzipIndexes=true -o Acquire::CompressionTypes::Order::=gz";

/// How long cached package lists are used before `apt-get update` runs
/// again (`--refresh` runs it at once; `--offline` uses any age).
pub(super) const LISTS_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A `.deb` the install needs: from the package lists, then the cache.
#[derive(Debug, Clone)]
pub(super) struct Deb {
    pub(super) package: String,
    pub(super) version: String,
    /// Its file name, `name_version_arch.deb`.
    pub(super) file: String,
    pub(super) sha256: crate::model::Sha256,
    /// The verified file in the cache (once there).
    pub(super) path: Option<std::path::PathBuf>,
}

/// The sandbox image's package lists (a tar of /var/lib/apt/lists), from
/// the cache when fresh, else from `apt-get update` in a container with the
/// network.
pub(super) async fn package_lists(
    engine: &Engine,
    image: &str,
    target: &Target,
    apt: &Apt,
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<Vec<u8>, AptError> {
    let cache = fetcher.cache();
    let id = engine
        .image_id(image)
        .await?
        .unwrap_or_else(|| image.to_string());
    let path = cache.keyed("apt", &format!("lists-v1-{id}"), ".tar");
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    let usable = fetcher.offline() || (!fetcher.refresh() && age.is_some_and(|a| a < LISTS_TTL));
    if usable {
        if let Some(tar) = cache.read_checked(&path) {
            return Ok(tar);
        }
    }
    if fetcher.offline() {
        return Err(AptError::NotCached {
            what: "the package lists".into(),
            packages: apt.packages.clone(),
        });
    }
    let _step = Step::start(reporter, "apt-get update");
    let spec = ContainerSpec::root(image, &target.platform, true, "apt-update");
    let tar = engine
        .with_container(&spec, async |c| {
            c.run_ok(
                &format!(
                    "set -e; {APT_ENV}; rm -rf /var/lib/apt/lists/*; $APT {LISTS_OPTS} update"
                ),
                "apt-get update",
                &ExecOptions::default(),
            )
            .await?;
            let members = c.copy_out_members("/var/lib/apt/lists").await?;
            lists_tar(&members).map_err(|e| AptError::CopyOut {
                path: "/var/lib/apt/lists".into(),
                message: e.to_string(),
            })
        })
        .await?;
    cache
        .write_checked(&path, &tar)
        .map_err(|source| AptError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(tar)
}

/// A tar of the lists' files (copied out as `lists/...`), to unpack into
/// /var/lib/apt/lists.
pub(super) fn lists_tar(members: &crate::docker::Members) -> std::io::Result<Vec<u8>> {
    let files: Vec<(String, u32, Vec<u8>)> = members
        .iter()
        .filter_map(|(name, data)| {
            let rel = name.split_once('/').map(|(_, r)| r)?;
            // Only the lists themselves: no lock file, no partial downloads.
            let keep = !rel.is_empty() && !rel.contains('/') && rel != "lock";
            data.as_ref()
                .filter(|_| keep)
                .map(|d| (rel.to_string(), 0o644, d.clone()))
        })
        .collect();
    crate::docker::tar_of(&files)
}

pub(super) async fn restore_lists(c: &impl Run, lists: &[u8]) -> Result<(), AptError> {
    c.copy_in("/var/lib/apt/lists", lists.to_vec()).await?;
    Ok(())
}

/// The .deb files `apt-get install` would fetch for the recipe's packages,
/// with the sha256 the lists give (`--print-uris`, no network needed).
pub(super) async fn wanted_debs(c: &impl Run, apt: &Apt) -> Result<Vec<Deb>, AptError> {
    let out = c
        .exec(
            &format!(
                "{APT_ENV}; $APT {LISTS_OPTS} install -y -qq --print-uris {}",
                quoted(&apt.packages)
            ),
            &ExecOptions::default(),
        )
        .await?;
    apt_outcome(
        &out,
        c.image(),
        format!("apt-get install --print-uris {}", apt.packages.join(" ")),
    )?;
    let mut debs = parse_print_uris(&out.combined());
    if debs.is_empty() {
        return Ok(debs);
    }
    // --print-uris may name only an MD5 sum: the lists' SHA256 of each file.
    let specs: Vec<String> = debs
        .iter()
        .map(|d| format!("{}={}", d.package, d.version))
        .collect();
    let shown = c
        .run_ok(
            &format!(
                "{APT_ENV}; apt-cache {LISTS_OPTS} show --no-all-versions {}",
                quoted(&specs)
            ),
            "apt-cache show",
            &ExecOptions::default(),
        )
        .await?;
    let sums = sha256_of_stanzas(&shown.stdout);
    for d in &mut debs {
        d.sha256 = sums
            .get(&(d.package.clone(), d.version.clone()))
            .cloned()
            .ok_or_else(|| AptError::CopyOut {
                path: d.file.clone(),
                message: "the package lists give no SHA256 for it".into(),
            })?;
    }
    Ok(debs)
}

/// (Package, Version) → SHA256 of `apt-cache show` stanzas.
pub(super) fn sha256_of_stanzas(text: &str) -> BTreeMap<(String, String), crate::model::Sha256> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        if let (Some(p), Some(v), Some(h)) =
            (field("Package:"), field("Version:"), field("SHA256:"))
        {
            if let Ok(h) = crate::model::Sha256::parse(&h) {
                out.insert((p, v), h);
            }
        }
    }
    out
}

/// How an apt-get command ended: its own error lines for a package it
/// cannot find (`E: Unable to locate package`) or a version it does not
/// have (`E: Version '5.3.3-1.1' for 'lua5.3' was not found`), else a
/// failure with the end of its output.
pub(super) fn apt_outcome(
    out: &crate::docker::ExecOutput,
    image: &str,
    what: String,
) -> Result<(), AptError> {
    let text = out.combined();
    let unknown: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("E: Unable to locate package "))
        .map(|p| p.trim().to_string())
        .collect();
    if !unknown.is_empty() {
        return Err(AptError::UnknownPackage {
            packages: unknown,
            image: image.to_string(),
        });
    }
    if let Some((version, package)) = text.lines().find_map(|l| {
        let rest = l.strip_prefix("E: Version '")?;
        let (version, rest) = rest.split_once("' for '")?;
        let (package, _) = rest.split_once('\'')?;
        Some((version.to_string(), package.to_string()))
    }) {
        return Err(AptError::VersionGone { package, version });
    }
    if out.code != 0 || out.timed_out {
        return Err(DockerError::Failed {
            what,
            image: image.to_string(),
            code: out.code,
            output: crate::docker::tail(&text, 40),
        }
        .into());
    }
    Ok(())
}

/// `'URL' FILE SIZE SHA256:HEX` lines of `apt-get --print-uris`.
pub(super) fn parse_print_uris(text: &str) -> Vec<Deb> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let _url = w.next()?.strip_prefix('\'')?;
            let file = w.next()?.to_string();
            let _size = w.next()?;
            // Filled in from the lists when the line names another sum.
            let sha256 = w
                .find_map(|x| x.strip_prefix("SHA256:"))
                .and_then(|h| crate::model::Sha256::parse(h).ok())
                .unwrap_or_else(|| crate::model::Sha256::of(b""));
            let stem = file.strip_suffix(".deb")?;
            let mut parts = stem.split('_');
            let package = parts.next()?.to_string();
            let version = parts.next()?.replace("%3a", ":");
            Some(Deb {
                package,
                version,
                file,
                sha256,
                path: None,
            })
        })
        .collect()
}

/// Every wanted .deb, verified in the cache: those missing are downloaded
/// in a container with the network (`--download-only`), copied out and
/// checked against the lists' sha256. Under `--offline` a missing one is
/// an error naming its package.
#[allow(clippy::too_many_arguments)]
pub(super) async fn cached_debs(
    engine: &Engine,
    image: &str,
    target: &Target,
    lists: &[u8],
    mut debs: Vec<Deb>,
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<Vec<Deb>, AptError> {
    let cache = fetcher.cache();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AptError::Io { path, source }
    };
    let mut missing = Vec::new();
    for (i, d) in debs.iter_mut().enumerate() {
        match cache
            .lookup(&d.sha256)
            .map_err(io(&cache.blob(&d.sha256)))?
        {
            crate::fetch::cache::Lookup::Verified { path, .. } => d.path = Some(path),
            _ => missing.push(i),
        }
    }
    if missing.is_empty() {
        return Ok(debs);
    }
    if fetcher.offline() {
        return Err(AptError::NotCached {
            what: "the .deb files".into(),
            packages: missing.iter().map(|&i| debs[i].package.clone()).collect(),
        });
    }
    let _step = Step::start(
        reporter,
        &format!("downloading {} .deb file(s)", missing.len()),
    );
    let spec = ContainerSpec::root(image, &target.platform, true, "apt-download");
    // The missing files at their exact versions (a lock's, or the lists').
    let wanted: Vec<String> = missing
        .iter()
        .map(|&i| format!("{}={}", debs[i].package, debs[i].version))
        .collect();
    let members = engine
        .with_container(&spec, async |c| {
            restore_lists(c, lists).await?;
            let out = c
                .exec(
                    &format!(
                        "set -e; {APT_ENV}; $APT {LISTS_OPTS} install -y -qq --download-only {}",
                        quoted(&wanted)
                    ),
                    &ExecOptions::default(),
                )
                .await?;
            apt_outcome(&out, c.image(), "apt-get install --download-only".into())?;
            Ok::<_, AptError>(c.copy_out_members("/var/cache/apt/archives").await?)
        })
        .await?;
    for &i in &missing {
        let d = &mut debs[i];
        let data = members
            .iter()
            .find(|(name, data)| data.is_some() && name.rsplit('/').next() == Some(d.file.as_str()))
            .and_then(|(_, data)| data.as_ref())
            .ok_or_else(|| AptError::CopyOut {
                path: format!("/var/cache/apt/archives/{}", d.file),
                message: "apt-get did not download it".into(),
            })?;
        let actual = crate::model::Sha256::of(data);
        if actual != d.sha256 {
            return Err(AptError::DebMismatch {
                file: d.file.clone(),
                actual: actual.to_string(),
                expected: d.sha256.to_string(),
            });
        }
        let path = cache.blob(&d.sha256);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        cache.write_atomic(&path, data).map_err(io(&path))?;
        d.path = Some(path);
    }
    Ok(debs)
}

/// Put the .deb files in apt's archive folder, where `--no-download`
/// installs them from.
pub(super) async fn put_debs(c: &impl Run, debs: &[Deb]) -> Result<(), AptError> {
    let mut files = Vec::new();
    for d in debs {
        let path = d.path.as_ref().expect("cached_debs set every path");
        let data = std::fs::read(path).map_err(|source| AptError::Io {
            path: path.clone(),
            source,
        })?;
        files.push((d.file.clone(), 0o644, data));
    }
    let tar = crate::docker::tar_of(&files).map_err(|e| AptError::CopyOut {
        path: "/var/cache/apt/archives".into(),
        message: e.to_string(),
    })?;
    c.copy_in("/var/cache/apt/archives", tar).await?;
    Ok(())
}

/// The .deb files to install, verified in the cache: a lock's exact files,
/// else those the lists name for the packages (and patchelf, for RUNPATH,
/// which comes the same way without being recorded).
#[allow(clippy::too_many_arguments)]
pub(super) async fn debs_for(
    engine: &Engine,
    spec: &ContainerSpec,
    target: &Target,
    apt: &Apt,
    locked: &[crate::model::plan::LockedDeb],
    lists: &[u8],
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<Vec<Deb>, AptError> {
    let debs = if locked.is_empty() {
        listed_debs(engine, spec, apt, lists).await?
    } else {
        locked
            .iter()
            .map(|d| Deb {
                package: d.package.clone(),
                version: d.version.clone(),
                file: d.deb.clone(),
                sha256: d.sha256.clone(),
                path: None,
            })
            .collect()
    };
    cached_debs(engine, &spec.image, target, lists, debs, fetcher, reporter).await
}

/// The .deb files the lists name for the packages, and for patchelf (for
/// RUNPATH, which comes the same way without being recorded), from a
/// container with no network.
pub(super) async fn listed_debs(
    engine: &Engine,
    spec: &ContainerSpec,
    apt: &Apt,
    lists: &[u8],
) -> Result<Vec<Deb>, AptError> {
    let mut fetched = apt.clone();
    if apt.link != Some(Link::Wrapper) {
        fetched.packages.push("patchelf".into());
    }
    engine
        .with_container(spec, async |c| {
            restore_lists(c, lists).await?;
            wanted_debs(c, &fetched).await
        })
        .await
}

/// The installed packages, each with the .deb file it came from.
pub(super) fn with_debs(installed: Vec<AptPackage>, debs: &[Deb]) -> Vec<AptPackage> {
    installed
        .into_iter()
        .map(|mut p| {
            if let Some(d) = debs
                .iter()
                .find(|d| d.package == p.package && d.version == p.version)
            {
                p.deb = Some(d.file.clone());
                p.sha256 = Some(d.sha256.clone());
            }
            p
        })
        .collect()
}

/// The exact `.deb` files the recipe's packages (and patchelf) install in
/// the target's sandbox image today, for `bundle lock`.
pub async fn lock_debs(
    engine: &Engine,
    target: &Target,
    apt: &Apt,
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<Vec<crate::model::plan::LockedDeb>, AptError> {
    let sandbox_tag = sandbox::sandbox_image(engine, target, reporter).await?;
    let lists = package_lists(engine, &sandbox_tag, target, apt, fetcher, reporter).await?;
    let spec = ContainerSpec::root(&sandbox_tag, &target.platform, false, "apt");
    let debs = listed_debs(engine, &spec, apt, &lists).await?;
    Ok(debs
        .into_iter()
        .map(|d| crate::model::plan::LockedDeb {
            package: d.package,
            version: d.version,
            deb: d.file,
            sha256: d.sha256,
        })
        .collect())
}

#[cfg(test)]
mod uri_tests {
    use super::*;

    #[test]
    fn print_uris_lines_become_debs() {
        let h = "ab".repeat(32);
        let text = format!(
            "'http://deb.example/pool/main/l/lua5.3/liblua5.3-0_5.3.3-1.1%2bdeb11u1_amd64.deb' liblua5.3-0_5.3.3-1.1+deb11u1_amd64.deb 118412 SHA256:{h}\n\
             'http://deb.example/pool/main/e/epoch/tool_1%3a2.0-1_amd64.deb' tool_1%3a2.0-1_amd64.deb 10 SHA256:{h}\n\
             Reading package lists...\n'x' y.tar 1 MD5Sum:00\n"
        );
        let debs = parse_print_uris(&text);
        assert_eq!(debs.len(), 2);
        assert_eq!(debs[0].package, "liblua5.3-0");
        assert_eq!(debs[0].version, "5.3.3-1.1+deb11u1");
        assert_eq!(debs[0].sha256.as_str(), h);
        assert_eq!(debs[1].version, "1:2.0-1");
        let shown = format!("Package: tool\nVersion: 1:2.0-1\nSHA256: {h}\nSize: 10\n\nPackage: other\nVersion: 1\n");
        let sums = sha256_of_stanzas(&shown);
        assert_eq!(
            sums[&("tool".to_string(), "1:2.0-1".to_string())].as_str(),
            h
        );
        assert_eq!(sums.len(), 1);
    }

    #[test]
    fn apt_get_errors_become_the_errors_they_mean() {
        let out = |code: i64, stderr: &str| crate::docker::ExecOutput {
            code,
            stdout: "Reading package lists...\n".into(),
            stderr: stderr.into(),
            elapsed: std::time::Duration::ZERO,
            timed_out: false,
        };
        let e = apt_outcome(
            &out(100, "E: Unable to locate package zz9\n"),
            "img",
            "x".into(),
        );
        assert!(
            matches!(e, Err(AptError::UnknownPackage { ref packages, .. }) if packages == &["zz9"])
        );
        let e = apt_outcome(
            &out(100, "E: Version '5.3.0-0' for 'lua5.3' was not found\n"),
            "img",
            "x".into(),
        );
        assert!(
            matches!(e, Err(AptError::VersionGone { ref package, ref version }) if package == "lua5.3" && version == "5.3.0-0")
        );
        let e = apt_outcome(
            &out(100, "E: Unable to fetch some archives\n"),
            "img",
            "x".into(),
        );
        assert!(matches!(
            e,
            Err(AptError::Docker(DockerError::Failed { code: 100, .. }))
        ));
        assert!(apt_outcome(&out(0, ""), "img", "x".into()).is_ok());
    }
}
