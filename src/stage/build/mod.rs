//! `[[build]]` recipes: programs built from source inside an image of the
//! target (its sandbox image plus the recipe's `packages`), so that they
//! need no newer glibc than the target has. The source (an archive, or a
//! crate and its locked dependencies) is fetched and verified on the host;
//! the build container has no network; files go in and out through the
//! Docker API. The programs then go through what apt binaries go through:
//! the library closure against the sandbox, RUNPATH or wrappers, the checks.

use crate::error::Diagnose;
use std::path::Path;

use crate::config::recipe::{Build, Release};
use crate::config::target::Target;
use crate::docker::DockerError;
use crate::fetch::Fetcher;
use crate::model::plan::{ArchiveKind, BuildSource, PlannedBuild};
use crate::report::Reporter;
use crate::stage::apt::{self, AptBuild, AptError};
use crate::stage::crates::{CrateError, Registry};
use crate::stage::release::{self, ReleaseError};
use script::{build_packages, fresh};
use toolchain::rust_for;

mod script;
mod toolchain;

pub use script::OUTPUT_LIMIT_VAR;
pub use toolchain::{host_toolchain, Toolchain};

/// Where a build installs (`$PREFIX`), inside the container.
pub const PREFIX: &str = "/opt/bundle-prefix";
/// Where the host's Rust toolchain sits in the crate build image.
const RUST_DIR: &str = "/opt/bundle-rust";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Crate(#[from] CrateError),
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    #[error("[[build]] `{name}`: {source}")]
    Release {
        name: String,
        #[source]
        source: Box<ReleaseError>,
    },
    #[error("[[build]] `{name}`: {url} is not a source archive (.tar.gz, .tar.xz or .zip)")]
    NotAnArchive { name: String, url: String },
    #[error("[[build]] `{name}`: the source archive {file} is unsafe or damaged")]
    BadSource {
        name: String,
        file: String,
        #[source]
        source: crate::archive::ArchiveError,
    },
    #[error("[[build]] `{name}` failed (exit code {code}) in {image}; its last lines:\n{tail}")]
    ScriptFailed {
        name: String,
        code: i64,
        image: String,
        tail: String,
    },
    #[error("[[build]] `{name}`: the build installed no `{binary}` under $PREFIX ({PREFIX})")]
    BinaryMissing {
        name: String,
        binary: String,
        found: Vec<String>,
    },
    #[error("[[build]] `{name}`: `{binary}` leads outside $PREFIX ({PREFIX}), to {real}")]
    OutsidePrefix {
        name: String,
        binary: String,
        real: String,
    },
    #[error("[[build]] `{name}`: `{binary}` is {size} bytes, over the {limit}-byte limit on a build's output")]
    OutputTooLarge {
        name: String,
        binary: String,
        size: u64,
        limit: u64,
    },
    #[error("[[build]] `{name}` builds a crate, and this machine has no Rust toolchain: {why}")]
    NoToolchain { name: String, why: String },
    #[error("[[build]] `{name}`: the host's Rust toolchain runs on {host}, and target {target} is {arch}")]
    OtherArch {
        name: String,
        host: String,
        target: String,
        arch: String,
    },
}

impl Diagnose for BuildError {
    fn hint(&self) -> Option<String> {
        match self {
            BuildError::Docker(e) => e.hint(),
            BuildError::Apt(e) => e.hint(),
            BuildError::Crate(e) => e.hint(),
            BuildError::Fetch(e) => e.hint(),
            BuildError::Release { source, .. } => source.hint(),
            BuildError::ScriptFailed { .. } => Some(
                "the build container has no network: everything the script needs must come from the source or from `packages` (installed in the build image)".into(),
            ),
            BuildError::BinaryMissing { found, .. } if !found.is_empty() => Some(format!(
                "the build installed: {}; list those in `binaries` (paths relative to $PREFIX)",
                found.join(", ")
            )),
            BuildError::BinaryMissing { .. } => Some(
                "the script must install into \"$PREFIX\" (e.g. `make install PREFIX=\"$PREFIX\"`)".into(),
            ),
            BuildError::OutsidePrefix { .. } => Some(
                "a program the build installs must be a file under $PREFIX, not a link to a file of the build image (copy it there if it is meant to ship)".into(),
            ),
            BuildError::OutputTooLarge { .. } => Some(format!(
                "raise the limit with {OUTPUT_LIMIT_VAR}=BYTES if the program really is that large"
            )),
            BuildError::NoToolchain { .. } => Some(
                "install Rust with rustup (https://rustup.rs); bundle copies the host's toolchain into the build image, as `cross` does".into(),
            ),
            BuildError::OtherArch { .. } => Some(
                "build crates for a target of this machine's architecture, or on a machine of the target's".into(),
            ),
            _ => None,
        }
    }

    fn exit_code(&self) -> i32 {
        match self {
            BuildError::Docker(e) => e.exit_code(),
            BuildError::Apt(e) => e.exit_code(),
            BuildError::Crate(e) => e.exit_code(),
            BuildError::Fetch(e) => e.exit_code(),
            BuildError::Release { source, .. } => source.exit_code(),
            BuildError::NotAnArchive { .. }
            | BuildError::BinaryMissing { .. }
            | BuildError::OutsidePrefix { .. }
            | BuildError::OutputTooLarge { .. }
            | BuildError::OtherArch { .. } => crate::error::BAD_INPUT,
            _ => crate::error::WORK_FAILED,
        }
    }
}

/// Pin a build: its version, and its source's URL and sha256.
pub async fn plan(
    b: &Build,
    target: &Target,
    fetcher: &Fetcher,
    github_api: &str,
    crates_index: &str,
    reporter: &dyn Reporter,
) -> Result<PlannedBuild, BuildError> {
    let name = b.name().to_string();
    let (version, source) = match (&b.url, &b.krate) {
        (_, Some(krate)) => {
            let registry = Registry::new(crates_index, fetcher);
            let chosen = registry
                .choose(krate, b.version.as_deref().unwrap_or("*"))
                .await?;
            let source = BuildSource::Crate {
                name: krate.clone(),
                url: chosen.url,
                sha256: chosen.sha256,
                index: registry.index.clone(),
            };
            (chosen.version, source)
        }
        (Some(url), None) => {
            let as_release = Release {
                name: name.clone(),
                version: b.version.clone().unwrap_or_default(),
                url: url.clone(),
                sha256: b.sha256.clone(),
                sha256_url: b.sha256_url.clone(),
                files: Vec::new(),
                check: Vec::new(),
            };
            let r = release::plan_release(&as_release, target, fetcher, github_api, reporter)
                .await
                .map_err(|e| BuildError::Release {
                    name: name.clone(),
                    source: Box::new(e),
                })?;
            if r.archive == ArchiveKind::Bare {
                return Err(BuildError::NotAnArchive { name, url: r.url });
            }
            let source = BuildSource::Archive {
                url: r.url,
                sha256: r.sha256,
                archive: r.archive,
            };
            (r.version, source)
        }
        (None, None) => unreachable!("a validated [[build]] has a url or a crate"),
    };
    Ok(PlannedBuild {
        name,
        version,
        source,
        packages: b.packages.clone(),
        script: b.script.clone(),
        features: b.features.clone(),
        binaries: b.binaries.clone(),
        link: b.link,
    })
}

/// The cache key of a build's result: everything that shapes it, none of
/// which needs Docker to know (so a rebuild needs no daemon).
fn result_key(target: &Target, planned: &PlannedBuild, toolchain: Option<&Toolchain>) -> String {
    let inputs = serde_json::json!({
        "v": 1,
        "bundle": env!("CARGO_PKG_VERSION"),
        "target": target.profile().digest.to_string(),
        "build": planned,
        "toolchain": toolchain.map(|t| &t.version),
    });
    format!("result-{inputs}")
}

/// What a build produced: the files (as apt's are) and what built them.
#[derive(Debug, Clone)]
pub struct Built {
    pub files: AptBuild,
    /// The build image, in words: the target's image and the packages.
    pub image: String,
    pub toolchain: Option<String>,
}

/// Build `planned` and write its programs and the libraries they need that
/// the sandbox lacks into `root`.
pub async fn build(
    planned: &PlannedBuild,
    target: &Target,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
    root: &Path,
) -> Result<Built, BuildError> {
    let toolchain = match &planned.source {
        BuildSource::Crate { .. } => Some(rust_for(planned, target)?),
        BuildSource::Archive { .. } => None,
    };
    let mut image = target.image.clone();
    let packages = build_packages(planned);
    if !packages.is_empty() {
        image.push_str(&format!(" + {}", packages.join(" ")));
    }
    let key = result_key(target, planned, toolchain.as_ref());
    let cache = fetcher.cache();
    let files = match apt::reuse(cache, "build", &key, root) {
        Some(done) => {
            tracing::info!("build {}: reused an identical earlier build", planned.name);
            done
        }
        None => {
            let done = fresh(planned, target, toolchain.as_ref(), fetcher, reporter, root).await?;
            apt::remember(cache, "build", &key, root, &done);
            done
        }
    };
    Ok(Built {
        files,
        image,
        toolchain: toolchain.map(|t| t.version),
    })
}

/// The manifest's record of how a build's files were made.
pub fn record(planned: &PlannedBuild, built: &Built) -> crate::model::manifest::BuildRecord {
    let (url, sha256) = planned.source.file();
    let from = match &planned.source {
        BuildSource::Crate { name, .. } => format!("crate {name} {}", planned.version),
        BuildSource::Archive { .. } => url.to_string(),
    };
    crate::model::manifest::BuildRecord {
        from,
        sha256: sha256.clone(),
        image: built.image.clone(),
        toolchain: built.toolchain.clone(),
    }
}

/// What the unit tests of the build's files share.
#[cfg(test)]
pub(super) mod test_support {
    use crate::model::plan::{BuildSource, PlannedBuild};

    /// A planned build of `hello` 1.0 from `source`.
    pub fn planned(source: BuildSource) -> PlannedBuild {
        PlannedBuild {
            name: "hello".into(),
            version: "1.0".into(),
            source,
            packages: vec!["libsqlite3-dev".into()],
            script: Some("make install PREFIX=\"$PREFIX\"".into()),
            features: vec!["pcre2".into()],
            binaries: vec!["hello".into()],
            link: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sha256;
    use crate::stage::build::test_support::planned;
    use std::path::PathBuf;

    #[test]
    fn the_result_key_changes_with_every_input_and_needs_no_docker() {
        let target = crate::config::target::Target::load("ubuntu-20.04").unwrap();
        let p = planned(BuildSource::Archive {
            url: "http://127.0.0.1:1/hello-1.0.tar.gz".into(),
            sha256: Sha256::of(b""),
            archive: ArchiveKind::TarGz,
        });
        let a = result_key(&target, &p, None);
        assert_eq!(a, result_key(&target, &p, None));
        let mut other = p.clone();
        other.script = Some("make".into());
        assert_ne!(a, result_key(&target, &other, None));
        let mut other = p.clone();
        other.packages.push("zlib1g-dev".into());
        assert_ne!(a, result_key(&target, &other, None));
        let t = Toolchain {
            sysroot: PathBuf::from("/x"),
            version: "rustc 1.0.0".into(),
            host: "x86_64-unknown-linux-gnu".into(),
        };
        assert_ne!(a, result_key(&target, &p, Some(&t)));
    }
}
