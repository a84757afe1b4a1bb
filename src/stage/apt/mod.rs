//! `[apt]` recipes: install packages in a container of the target's sandbox
//! image, take the named binaries and the shared libraries they need that
//! the sandbox lacks, and make the binaries find those libraries by
//! themselves (RUNPATH `$ORIGIN/../lib`, or a wrapper script).

use crate::error::Diagnose;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::recipe::Apt;
use crate::config::target::Target;
use crate::docker::sandbox::{self};
use crate::docker::{ContainerSpec, DockerError, Engine};
use crate::model::manifest::{AptPackage, Link};
use crate::report::{Reporter, Step};

mod closure;
mod install;
mod plan;

pub(crate) use closure::{
    library_closure, owner_and_version, owners, rows, stage_and_link, Binaries,
};
use install::*;
pub(crate) use install::{dpkg_list, DPKG_QUERY};
pub use plan::lock_debs;
use plan::*;

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("`{binary}` is not on PATH in {image} after installing {packages}")]
    BinaryNotFound {
        binary: String,
        image: String,
        packages: String,
        candidates: Vec<String>,
    },
    #[error("the distribution of {image} has no package {}", .packages.join(", "))]
    UnknownPackage {
        packages: Vec<String>,
        image: String,
    },
    #[error("{needed_by} needs {library}, which is not in {image}")]
    LibraryNotFound {
        library: String,
        needed_by: String,
        image: String,
    },
    #[error("the lock's {package} {version} is no longer in the distribution's package lists")]
    VersionGone { package: String, version: String },
    #[error("--offline: {what} for {} not in the cache", .packages.join(", "))]
    NotCached { what: String, packages: Vec<String> },
    #[error("{file} from the distribution's mirror is not the file its package lists name (sha256 {actual}, lists {expected})")]
    DebMismatch {
        file: String,
        actual: String,
        expected: String,
    },
    #[error("copying {path} out of the container: {message}")]
    CopyOut { path: String, message: String },
    #[error("writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for AptError {
    fn hint(&self) -> Option<String> {
        match self {
            AptError::Docker(e) => e.hint(),
            AptError::BinaryNotFound { candidates, .. } if !candidates.is_empty() => Some(format!(
                "the packages installed these programs: {}; list one of them in `binaries`",
                candidates.join(", ")
            )),
            AptError::BinaryNotFound { .. } => {
                Some("check `binaries` in the recipe: name programs the packages install".into())
            }
            AptError::LibraryNotFound { .. } => {
                Some("add the package that provides it to `packages` in the recipe".into())
            }
            AptError::VersionGone { .. } => Some(
                "the mirror dropped that version: run `bundle lock` again to pin what it has now".into(),
            ),
            AptError::NotCached { .. } => Some(
                "run the same build once with the network, which keeps the package lists and .deb files in the cache".into(),
            ),
            AptError::UnknownPackage { .. } => Some(
                "check the package names in the recipe (`apt-cache search` in the image finds them); names differ between distributions and releases".into(),
            ),
            _ => None,
        }
    }

    /// A package or program the recipe names that does not exist is bad
    /// input; the rest, failed work.
    fn exit_code(&self) -> i32 {
        match self {
            AptError::UnknownPackage { .. } | AptError::BinaryNotFound { .. } => {
                crate::error::BAD_INPUT
            }
            AptError::Docker(e) => e.exit_code(),
            _ => crate::error::WORK_FAILED,
        }
    }
}

/// A file the apt stage wrote into the bundle.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AptFile {
    /// `bin/<name>`, `lib/<soname>` or `libexec/<name>`.
    pub path: String,
    pub library: bool,
    /// The path it was copied from, in the image.
    pub from: String,
    pub package: Option<String>,
    pub version: Option<String>,
    pub link: Option<Link>,
}

/// What the apt stage produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AptBuild {
    /// Packages the install added to the image, with versions.
    pub installed: Vec<AptPackage>,
    pub files: Vec<AptFile>,
    /// Sonames the sandbox image already has (not bundled).
    pub system_libraries: BTreeSet<String>,
}

/// The package and version a path in the image belongs to.
pub(super) type VersionOf<'a> = dyn Fn(&str) -> (Option<String>, Option<String>) + 'a;

/// Install `apt.packages` in the target's sandbox image and write the
/// binaries and libraries into `root` (`bin/`, `lib/`, maybe `libexec/`).
pub async fn build(
    engine: &Engine,
    target: &Target,
    apt: &Apt,
    locked: &[crate::model::plan::LockedDeb],
    root: &Path,
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<AptBuild, AptError> {
    let cache = fetcher.cache();
    let step = Step::start(reporter, "sandbox image and its libraries");
    let sandbox_tag = sandbox::sandbox_image(engine, target, reporter).await?;
    let system_libraries =
        sandbox::libraries(engine, &sandbox_tag, &target.platform, cache).await?;
    drop(step);
    // The package lists and .deb files come from the cache, fetched into it
    // (in a container with the network) only when missing; the install
    // itself runs with no network, as every rebuild can.
    let lists = package_lists(engine, &sandbox_tag, target, apt, fetcher, reporter).await?;
    // The same inputs (image, lists, packages, lock, recipe) give the same
    // files: a rebuild takes them from the cache, checked, with no container.
    let key = result_key(engine, &sandbox_tag, &lists, apt, locked).await?;
    if let Some(done) = reuse(cache, "apt", &key, root) {
        tracing::info!("apt: reused the result of an identical earlier build");
        return Ok(done);
    }
    let spec = ContainerSpec::root(&sandbox_tag, &target.platform, false, "apt");
    let debs = debs_for(
        engine, &spec, target, apt, locked, &lists, fetcher, reporter,
    )
    .await?;
    // Installing a lock: every locked package at its version (patchelf aside).
    let install = if locked.is_empty() {
        apt.clone()
    } else {
        Apt {
            packages: debs
                .iter()
                .filter(|d| d.package != "patchelf")
                .map(|d| format!("{}={}", d.package, d.version))
                .collect(),
            ..apt.clone()
        }
    };
    let (installed, files) = engine
        .with_container(&spec, async |c| {
            restore_lists(c, &lists).await?;
            put_debs(c, &debs).await?;
            build_in(c, target, &install, root, &system_libraries, reporter).await
        })
        .await?;
    let installed = with_debs(installed, &debs);
    let done = AptBuild {
        installed,
        files,
        system_libraries,
    };
    remember(cache, "apt", &key, root, &done);
    Ok(done)
}

/// The cache key of an apt result: everything that shapes it.
async fn result_key(
    engine: &Engine,
    image: &str,
    lists: &[u8],
    apt: &Apt,
    locked: &[crate::model::plan::LockedDeb],
) -> Result<String, AptError> {
    let id = engine
        .image_id(image)
        .await?
        .unwrap_or_else(|| image.to_string());
    let inputs = serde_json::json!({
        "v": 1,
        "bundle": env!("CARGO_PKG_VERSION"),
        "image": id,
        "lists": crate::model::Sha256::of(lists).to_string(),
        "apt": apt,
        "locked": locked,
    });
    Ok(format!("result-{inputs}"))
}

/// A cached result: its record, and every file it wrote, by sha256.
#[derive(serde::Serialize, serde::Deserialize)]
struct Remembered {
    build: AptBuild,
    /// (path in the bundle, sha256) of each file written.
    blobs: Vec<(String, crate::model::Sha256)>,
}

/// Keep the result and its files in the cache (best effort: a failure only
/// costs the next build its shortcut).
pub(super) fn remember(
    cache: &crate::fetch::cache::Cache,
    kind: &str,
    key: &str,
    root: &Path,
    done: &AptBuild,
) {
    let mut blobs = Vec::new();
    for f in &done.files {
        let full = root.join(&f.path);
        let Ok(data) = std::fs::read(&full) else {
            return;
        };
        let sha = crate::model::Sha256::of(&data);
        let blob = cache.blob(&sha);
        if let Some(dir) = blob.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if cache.write_atomic(&blob, &data).is_err() {
            return;
        }
        blobs.push((f.path.clone(), sha));
    }
    let record = Remembered {
        build: done.clone(),
        blobs,
    };
    let _ = cache.write_json(&cache.keyed(kind, key, ".json"), &record);
}

/// Write a cached result's files into `root` when every one of them is in
/// the cache with its recorded sha256; else nothing (a fresh build runs).
pub(super) fn reuse(
    cache: &crate::fetch::cache::Cache,
    kind: &str,
    key: &str,
    root: &Path,
) -> Option<AptBuild> {
    let record: Remembered = cache.read_json(&cache.keyed(kind, key, ".json"))?;
    let mut found = Vec::new();
    for (rel, sha) in &record.blobs {
        let safe = crate::archive::safe_member_path(rel).ok()?;
        match cache.lookup(sha).ok()? {
            crate::fetch::cache::Lookup::Verified { path, .. } => found.push((safe, path)),
            _ => return None,
        }
    }
    for (rel, blob) in found {
        let dest = root.join(&rel);
        std::fs::create_dir_all(dest.parent()?).ok()?;
        std::fs::copy(&blob, &dest).ok()?;
        let slashed = crate::archive::slashed(&rel);
        let mode = if slashed.starts_with("bin/") || slashed.starts_with("libexec/") {
            0o755
        } else {
            0o644
        };
        crate::fsutil::set_mode(&dest, mode).ok()?;
    }
    Some(record.build)
}

pub(super) fn quoted(words: &[String]) -> String {
    words
        .iter()
        .map(|p| crate::docker::sh_quote(p))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the unit tests of apt's files share.
#[cfg(test)]
pub(super) mod test_support {
    use crate::config::recipe::Apt;
    use crate::model::manifest::Link;

    /// Run a future to its end on a runtime of its own.
    pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// The lua5.3 recipe, with `link` as given.
    pub fn recipe(link: Option<Link>) -> Apt {
        Apt {
            packages: vec!["lua5.3".into()],
            binaries: vec!["lua5.3".into()],
            link,
            check: Vec::new(),
        }
    }
}
