//! The Plan: every file a bundle will hold, pinned, before anything is
//! downloaded. `bundle plan --json` prints it; a lock file is a saved Plan.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fetch::Fetcher;
use crate::hash::Sha256;
use crate::index::Index;
use crate::recipe::{Check, Recipe, Sdists};
use crate::release::{self, PlannedRelease, ReleaseError};
use crate::resolve::{self, ResolveError, ResolveOptions};
use crate::sdist::SdistBuilder;
use crate::target::{Target, TargetSummary};

pub const PLAN_SCHEMA: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
}

impl PlanError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PlanError::Resolve(e) => e.hint(),
            PlanError::Release(e) => e.hint(),
            PlanError::Index(e) => e.hint(),
        }
    }
}

/// One wheel to bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedWheel {
    pub package: String,
    pub version: String,
    pub filename: String,
    pub url: String,
    pub sha256: Option<Sha256>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Set when the wheel is built from an sdist in the target image: then
    /// `url` is the sdist's and `filename`/`sha256` are the built wheel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdist: Option<PlannedSdist>,
}

/// The sdist a wheel is built from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedSdist {
    pub filename: String,
    pub sha256: Sha256,
}

/// Debian packages to install in the target's image, and programs to take.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedApt {
    pub packages: Vec<String>,
    pub binaries: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::apt::Link>,
}

/// A package left out of the bundle, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Excluded {
    pub package: String,
    pub version: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Plan {
    pub schema: u32,
    pub name: String,
    pub target: TargetSummary,
    pub index_url: String,
    pub requirements: Vec<String>,
    pub wheels: Vec<PlannedWheel>,
    #[serde(default)]
    pub releases: Vec<PlannedRelease>,
    /// Installed at build time in a container of the target image; the
    /// versions installed are recorded in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<PlannedApt>,
    pub excluded: Vec<Excluded>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub index_url: String,
    pub resolve: ResolveOptions,
    /// Base URL of the GitHub API, for `version = "latest"`.
    pub github_api: String,
}

/// Resolve a recipe for a target into a complete Plan.
pub async fn plan(
    recipe: &Recipe,
    target: &Target,
    options: &PlanOptions,
    fetcher: Arc<Fetcher>,
    cancel: Arc<AtomicBool>,
) -> Result<Plan, PlanError> {
    let mut wheels = Vec::new();
    let mut excluded = Vec::new();
    if !recipe.pypi.requirements.is_empty() {
        let mut index = Index::new(
            &options.index_url,
            fetcher.clone(),
            target,
            recipe.pypi.exclude_newer.clone(),
        )?;
        if recipe.pypi.sdists == Sdists::Build {
            index = index.with_sdists(Arc::new(SdistBuilder::new(
                target,
                fetcher.clone(),
                &options.index_url,
            )));
        }
        let index = Arc::new(index);
        let resolution = resolve::resolve(
            index.clone(),
            target,
            recipe.pypi.requirements.clone(),
            &options.resolve,
            cancel,
        )
        .await?;
        for p in resolution.packages {
            let planned = match (p.wheel.sdist, index.sdist_builder()) {
                (true, Some(builder)) => {
                    // Built already, for its metadata: this is a cache hit.
                    let built = builder
                        .wheel(&p.wheel.sdist_ref())
                        .await
                        .map_err(|e| PlanError::Index(e.into()))?;
                    PlannedWheel {
                        package: p.name.to_string(),
                        version: p.version.to_string(),
                        filename: built.filename,
                        url: p.wheel.url,
                        sha256: Some(built.sha256),
                        size: Some(built.size),
                        sdist: Some(PlannedSdist {
                            filename: p.wheel.filename,
                            sha256: built.sdist_sha256,
                        }),
                    }
                }
                _ => PlannedWheel {
                    package: p.name.to_string(),
                    version: p.version.to_string(),
                    filename: p.wheel.filename,
                    url: p.wheel.url,
                    sha256: p.wheel.sha256,
                    size: p.wheel.size,
                    sdist: None,
                },
            };
            wheels.push(planned);
        }
        for e in resolution.excluded {
            excluded.push(Excluded {
                package: e.name.to_string(),
                version: e.version.to_string(),
                reason: "preinstalled on target".into(),
            });
        }
    }
    let mut releases = Vec::new();
    for r in &recipe.releases {
        releases.push(release::plan_release(r, target, &fetcher, &options.github_api).await?);
    }
    wheels.sort_by(|a, b| a.filename.cmp(&b.filename));
    excluded.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(Plan {
        schema: PLAN_SCHEMA,
        name: recipe.name.clone(),
        target: target.summary(),
        index_url: options.index_url.clone(),
        requirements: recipe
            .pypi
            .requirements
            .iter()
            .map(|r| r.to_string())
            .collect(),
        wheels,
        releases,
        apt: recipe.apt.as_ref().map(|a| PlannedApt {
            packages: a.packages.clone(),
            binaries: a.binaries.clone(),
            link: a.link,
        }),
        excluded,
        checks: recipe.checks(),
    })
}
