//! Phase 1, plan: resolve the wheels for the target (remembered over
//! unchanged index pages), releases, apt packages and builds, into a Plan.

use crate::error::Diagnose;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Options;
use crate::config::recipe::Recipe;
use crate::config::recipe::Sdists;
use crate::config::target::Target;
use crate::fetch::cache::Cache;
use crate::fetch::Fetcher;
use crate::model::plan::{Excluded, Plan, PlannedApt, PlannedSdist, PlannedWheel, PLAN_SCHEMA};
use crate::report::{Reporter, Stage};
use crate::resolve::index::{AfterFetch, Index};
use crate::resolve::ResolveError;
use crate::resolve::{self, ResolveOptions};
use crate::stage::release;
use crate::stage::release::ReleaseError;
use crate::stage::sdist::SdistBuilder;
use crate::Error;

pub fn fetcher(options: &Options, reporter: Arc<dyn Reporter>) -> Result<Arc<Fetcher>, Error> {
    Ok(Arc::new(
        Fetcher::new(Cache::new(&options.cache_dir), options.offline, reporter)?
            .with_refresh(options.refresh)
            .with_allow_unhashed(options.allow_unhashed)
            .with_mirrors(crate::config::settings::release_mirrors()?),
    ))
}

/// Resolve to a Plan (downloads only what resolution needs, unless
/// `options.fetch_ahead`; then `after_fetch` sees each wheel downloaded).
pub async fn make_plan(
    options: &Options,
    recipe: &Recipe,
    target: &Target,
    fetcher: Arc<Fetcher>,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
    after_fetch: Option<AfterFetch>,
) -> Result<Plan, Error> {
    reporter.stage(Stage::Plan);
    let plan_options = PlanOptions {
        index_url: options.index_url.clone(),
        resolve: ResolveOptions {
            upgrade_preinstalled: options.upgrade_preinstalled,
            fetch_ahead: options.fetch_ahead,
            ..ResolveOptions::default()
        },
        github_api: options.github_api.clone(),
        crates_index: options.crates_index.clone(),
        npm_registry: crate::resolve::npm::registry_url(options.npm_registry.as_deref()),
        after_fetch,
    };
    Ok(plan(recipe, target, &plan_options, fetcher, reporter, cancel).await?)
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("recipe {recipe}: {error}")]
    Release {
        recipe: String,
        #[source]
        error: Box<ReleaseError>,
    },
    #[error(transparent)]
    Index(#[from] crate::resolve::index::IndexError),
    #[error(transparent)]
    Npm(Box<crate::resolve::npm::NpmError>),
    #[error("recipe {recipe}: {error}")]
    Build {
        recipe: String,
        #[source]
        error: Box<crate::stage::build::BuildError>,
    },
    #[error("{package} {version}: {file} has sha256 {sha256}, which is not among the hashes the requirements pin ({})", .pinned.join(", "))]
    NotPinnedHash {
        package: String,
        version: String,
        file: String,
        sha256: String,
        pinned: Vec<String>,
    },
    #[error("{package} {version} is installed but has no --hash: with --hash on some requirements, every package installed needs one, as in pip's hash-checking mode")]
    NotHashed {
        package: String,
        version: String,
        file: String,
        sha256: String,
    },
}

impl From<crate::resolve::npm::NpmError> for PlanError {
    fn from(e: crate::resolve::npm::NpmError) -> PlanError {
        PlanError::Npm(Box::new(e))
    }
}

impl Diagnose for PlanError {
    fn exit_code(&self) -> i32 {
        match self {
            PlanError::Resolve(e) => e.exit_code(),
            PlanError::Release { error, .. } => error.exit_code(),
            PlanError::Index(e) => e.exit_code(),
            PlanError::Npm(e) => e.exit_code(),
            PlanError::Build { error, .. } => error.exit_code(),
            PlanError::NotPinnedHash { .. } => crate::error::WORK_FAILED,
            PlanError::NotHashed { .. } => crate::error::BAD_INPUT,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            PlanError::Resolve(e) => e.hint(),
            PlanError::Release { error, .. } => error.hint(),
            PlanError::Index(e) => e.hint(),
            PlanError::Npm(e) => e.hint(),
            PlanError::Build { error, .. } => error.hint(),
            PlanError::NotPinnedHash { .. } => Some(
                "the index serves another file than the one pinned: pin the version whose file has that hash, or update the --hash lines".into(),
            ),
            PlanError::NotHashed {
                package,
                version,
                file,
                sha256,
            } => Some(format!(
                "add `{package}=={version} --hash=sha256:{sha256}` (its file {file}) to the requirements, or drop every --hash"
            )),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub index_url: String,
    pub resolve: ResolveOptions,
    /// Base URL of the GitHub API, for `version = "latest"`.
    pub github_api: String,
    /// Cargo's sparse index, for crates.
    pub crates_index: String,
    /// The npm registry.
    pub npm_registry: String,
    /// What a build does with each wheel downloaded during resolution.
    pub after_fetch: Option<AfterFetch>,
}

/// Resolve a recipe for a target into a complete Plan.
pub async fn plan(
    recipe: &Recipe,
    target: &Target,
    options: &PlanOptions,
    fetcher: Arc<Fetcher>,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
) -> Result<Plan, PlanError> {
    let (mut wheels, mut excluded) = if recipe.pypi.requirements.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        remembered_wheels(recipe, target, options, &fetcher, &reporter, cancel).await?
    };
    let mut releases = Vec::new();
    for r in &recipe.releases {
        releases.push(
            release::plan_release(r, target, &fetcher, &options.github_api, reporter.as_ref())
                .await
                .map_err(|error| PlanError::Release {
                    recipe: recipe.name.clone(),
                    error: Box::new(error),
                })?,
        );
    }
    let mut builds = Vec::new();
    for b in &recipe.builds {
        builds.push(
            crate::stage::build::plan(
                b,
                target,
                &fetcher,
                &options.github_api,
                &options.crates_index,
                reporter.as_ref(),
            )
            .await
            .map_err(|error| PlanError::Build {
                recipe: recipe.name.clone(),
                error: Box::new(error),
            })?,
        );
    }
    let npm = match &recipe.npm {
        Some(n) => {
            // The runtime first: Node's version shapes the picks (engines).
            let planner =
                crate::resolve::npm::Planner::new(n, &options.npm_registry, fetcher.clone())?;
            let runtime = crate::stage::npm::runtime::choose(
                n.runtime,
                planner.runtime_range(),
                target,
                planner.registry(),
                &fetcher,
                reporter.as_ref(),
                planner.context(),
            )
            .await?;
            let (planned, warnings) = planner.finish(n, target, runtime).await?;
            for w in warnings {
                reporter.warn(&w);
            }
            Some(planned)
        }
        None => None,
    };
    wheels.sort_by(|a, b| a.filename.cmp(&b.filename));
    excluded.sort_by(|a, b| a.package.cmp(&b.package));
    let replaced = replaced(&wheels, target);
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
            debs: Vec::new(),
        }),
        builds,
        npm,
        excluded,
        profile: Some(target.profile()),
        replaced,
        checks: recipe.checks(),
        verify: recipe.verify.clone(),
    })
}

/// The wheels that bring another version of a package the target has.
pub(super) fn replaced(
    wheels: &[PlannedWheel],
    target: &Target,
) -> Vec<crate::model::plan::Replaced> {
    wheels
        .iter()
        .filter_map(|w| {
            let name = <pep508_rs::PackageName as std::str::FromStr>::from_str(&w.package).ok()?;
            let have = target.preinstalled.get(&name)?;
            (have.to_string() != w.version).then(|| crate::model::plan::Replaced {
                package: w.package.clone(),
                preinstalled: have.to_string(),
                version: w.version.clone(),
            })
        })
        .collect()
}

/// A wheel whose package the requirements pin with `--hash` must be one of
/// those files (for a wheel built from an sdist: the sdist).
pub(super) fn check_pinned_hash(recipe: &Recipe, w: &PlannedWheel) -> Result<(), PlanError> {
    let name = <pep508_rs::PackageName as std::str::FromStr>::from_str(&w.package)
        .map(|n| n.to_string())
        .unwrap_or_else(|_| w.package.clone());
    let (file, sha) = match &w.sdist {
        Some(s) => (s.filename.clone(), Some(&s.sha256)),
        None => (w.filename.clone(), w.sha256.as_ref()),
    };
    let Some(pinned) = recipe.pypi.hashes.get(&name) else {
        // Hash-checking mode, as pip's: once anything is pinned by hash,
        // everything installed must be.
        if recipe.pypi.hashes.is_empty() {
            return Ok(());
        }
        return Err(PlanError::NotHashed {
            package: w.package.clone(),
            version: w.version.clone(),
            file,
            sha256: sha.map_or_else(|| "<the file's sha256>".into(), |h| h.to_string()),
        });
    };
    if sha.is_some_and(|h| pinned.contains(h)) {
        return Ok(());
    }
    Err(PlanError::NotPinnedHash {
        package: w.package.clone(),
        version: w.version.clone(),
        file,
        sha256: sha.map_or_else(
            || "unknown (the index gives none)".into(),
            |h| h.to_string(),
        ),
        pinned: pinned.iter().map(|h| h.to_string()).collect(),
    })
}

/// The wheels of a resolution, reused when an identical request was
/// resolved from index pages that are all unchanged in the cache (see
/// [`crate::resolve::memo`]); else resolved, and remembered. Requests that
/// build sdists always resolve (a build is not a page).
pub(super) async fn remembered_wheels(
    recipe: &Recipe,
    target: &Target,
    options: &PlanOptions,
    fetcher: &Arc<Fetcher>,
    reporter: &Arc<dyn Reporter>,
    cancel: CancellationToken,
) -> Result<(Vec<PlannedWheel>, Vec<Excluded>), PlanError> {
    use crate::resolve::memo;
    // (A file named by URL may change under the same requirement.)
    let named_by_url = recipe
        .pypi
        .requirements
        .iter()
        .any(|r| matches!(r.version_or_url, Some(pep508_rs::VersionOrUrl::Url(_))));
    if recipe.pypi.sdists == Sdists::Build || named_by_url {
        return plan_wheels(recipe, target, options, fetcher, reporter, cancel).await;
    }
    let key = serde_json::json!({
        "v": 1,
        "bundle": env!("CARGO_PKG_VERSION"),
        "index": options.index_url,
        "requirements": recipe.pypi.requirements.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "constraints": recipe.pypi.constraints.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "hashes": recipe.pypi.hashes,
        "exclude_newer": recipe.pypi.exclude_newer,
        "upgrade": options.resolve.upgrade_preinstalled,
        "target": target.profile().digest.to_string(),
    })
    .to_string();
    if let Some(found) = memo::lookup(fetcher, &key) {
        tracing::info!("resolution: the same request over unchanged index pages; reused");
        return Ok(found);
    }
    let resolved = plan_wheels(recipe, target, options, fetcher, reporter, cancel).await?;
    memo::store(fetcher, &key, &resolved, fetcher.pages_read());
    Ok(resolved)
}

/// Resolve the recipe's PyPI requirements for the target: the wheels to
/// bundle (built from sdists where the recipe allows), and the packages
/// left out because the target has them.
pub(super) async fn plan_wheels(
    recipe: &Recipe,
    target: &Target,
    options: &PlanOptions,
    fetcher: &Arc<Fetcher>,
    reporter: &Arc<dyn Reporter>,
    cancel: CancellationToken,
) -> Result<(Vec<PlannedWheel>, Vec<Excluded>), PlanError> {
    let mut index = Index::new(
        &options.index_url,
        fetcher.clone(),
        target,
        recipe.pypi.exclude_newer.clone(),
    )?
    .with_reporter(reporter.clone());
    if let Some(f) = &options.after_fetch {
        index = index.with_after_fetch(f.clone());
    }
    let direct = crate::resolve::index::direct_files(
        &recipe.pypi.requirements,
        &recipe.pypi.hashes,
        fetcher.allow_unhashed(),
    )
    .await?;
    let builder = || {
        // The resolver sees the builder only through the WheelBuilder trait.
        Arc::new(SdistBuilder::new(
            target,
            fetcher.clone(),
            &options.index_url,
            reporter.clone(),
        ))
    };
    if recipe.pypi.sdists == Sdists::Build {
        index = index.with_sdists(builder());
    } else if direct.iter().any(|d| d.is_sdist()) {
        // An sdist named by URL is built, as pip and uv build it; the
        // index's own sdists still need --sdists build.
        index = index.with_direct_sdists(builder());
    }
    let index = Arc::new(index.with_direct(direct)?);
    let resolve_options = ResolveOptions {
        constraints: recipe.pypi.constraints.clone(),
        ..options.resolve.clone()
    };
    let resolution = resolve::resolve(
        index.clone(),
        target,
        recipe.pypi.requirements.clone(),
        &resolve_options,
        cancel,
    )
    .await?;
    let mut wheels = Vec::new();
    for p in resolution.packages {
        let mut planned = PlannedWheel {
            package: p.name.to_string(),
            version: p.version.to_string(),
            filename: p.wheel.filename.clone(),
            url: p.wheel.url.clone(),
            sha256: p.wheel.sha256.clone(),
            size: p.wheel.size,
            sdist: None,
        };
        if let (true, Some(builder)) = (p.wheel.sdist, index.sdist_builder()) {
            // Built already, for its metadata: this is a cache hit.
            let built = builder
                .build_wheel(&p.wheel.sdist_ref())
                .await
                .map_err(|e| PlanError::Index(e.into()))?;
            planned.filename = built.filename;
            planned.sha256 = Some(built.sha256);
            planned.size = Some(built.size);
            planned.sdist = Some(PlannedSdist {
                filename: p.wheel.filename,
                sha256: built.sdist_sha256,
            });
        }
        check_pinned_hash(recipe, &planned)?;
        wheels.push(planned);
    }
    let excluded = resolution
        .excluded
        .into_iter()
        .map(|e| Excluded {
            package: e.name.to_string(),
            version: e.version.to_string(),
            reason: "preinstalled on target".into(),
        })
        .collect();
    Ok((wheels, excluded))
}
