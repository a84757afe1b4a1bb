//! The pipeline: plan → fetch → stage → check → assemble, one file per
//! phase (`planning`, `fetching`, `staging`, `checking`, `assembling`),
//! after the inputs are read (`load`). This file holds the options, the
//! result, and the orchestration that runs the phases in order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::assemble::{self, Format, Manifest, MANIFEST_SCHEMA};
use crate::config::recipe::Recipe;
use crate::config::target::Target;
use crate::fetch::{Blob, Fetcher};
use crate::model::plan::Plan;
use crate::report::{Reporter, Stage};
use crate::resolve::index::AfterFetch;
use crate::stage::release;
use crate::Error;
use assembling::Kept;
use assembling::{
    move_into_place, output_inputs, up_to_date, uploads_of, uploads_warnings, warn_if_other_target,
};
use checking::check_staged;
use fetching::{fetch_all, WheelScans};
use load::{check_format, read_lock};
use staging::staging_dir;
use staging::DiskRunner;

mod assembling;
mod checking;
mod fetching;
mod load;
mod planning;
mod staging;

pub use load::{default_format, default_name, load, load_lock_only, lock_target, MAX_NAME};
pub use planning::{fetcher, make_plan, plan, PlanError, PlanOptions};

/// Everything a build or plan needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub target: Option<String>,
    pub recipes_dir: Option<PathBuf>,
    pub index_url: String,
    pub github_api: String,
    /// Cargo's sparse index, for crates.
    pub crates_index: String,
    /// `--npm-registry`: the npm registry (else NPM_CONFIG_REGISTRY, else npm's default).
    pub npm_registry: Option<String>,
    pub offline: bool,
    pub refresh: bool,
    pub upgrade_preinstalled: bool,
    /// Accept index files and releases that come without a sha256.
    pub allow_unhashed: bool,
    pub cache_dir: PathBuf,
    pub out: PathBuf,
    pub format: Format,
    pub name: Option<String>,
    /// `-r FILE`s in pip's requirements format.
    pub requirement_files: Vec<PathBuf>,
    /// `-c FILE`s: constraints.
    pub constraint_files: Vec<PathBuf>,
    /// `--extra NAME`s of a pyproject.toml.
    pub extras: Vec<String>,
    /// Bundle a project named by its folder or pyproject.toml itself, built
    /// from its source (`--no-install-project` clears it).
    pub install_project: bool,
    /// `--exclude-newer DATE`, over the recipe's `exclude_newer`.
    pub exclude_newer: Option<String>,
    /// `--sdists build|refuse`, over the recipe's `sdists`.
    pub sdists: Option<crate::config::recipe::Sdists>,
    /// The upload limit, instead of the target's `max_file_bytes`.
    pub max_upload: Option<u64>,
    /// Split an archive over the limit into volumes (else refuse it).
    pub split: bool,
    /// Build from `<name>.lock.json` instead of resolving.
    pub locked: Option<PathBuf>,
    /// The lock is built as it is, with no items to compare it with
    /// (`build --locked --name NAME`).
    pub locked_as_is: bool,
    /// Download chosen wheels while resolving (builds; not `plan`/`lock`).
    pub fetch_ahead: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            args: Vec::new(),
            target: None,
            recipes_dir: None,
            index_url: crate::resolve::index::DEFAULT_INDEX.into(),
            github_api: release::GITHUB_API.into(),
            crates_index: crate::stage::crates::CRATES_INDEX.into(),
            npm_registry: None,
            offline: false,
            refresh: false,
            upgrade_preinstalled: false,
            allow_unhashed: false,
            cache_dir: crate::fetch::cache::default_dir(),
            out: PathBuf::from("dist"),
            format: Format::Zip,
            name: None,
            requirement_files: Vec::new(),
            constraint_files: Vec::new(),
            extras: Vec::new(),
            install_project: true,
            exclude_newer: None,
            sdists: None,
            max_upload: None,
            split: true,
            locked: None,
            locked_as_is: false,
            fetch_ahead: false,
        }
    }
}

/// What a build wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BuildOutput {
    #[serde(flatten)]
    pub manifest: Manifest,
    pub bundle_dir: PathBuf,
    /// The output folder (`--out`), as an absolute path. `archive` and
    /// `uploads[].path` are both relative to it.
    pub out: PathBuf,
    /// The single archive, relative to `out`; `None` for a folder bundle or
    /// one split into volumes (see `uploads`).
    pub archive: Option<String>,
    /// What to upload, in order, with sizes and sha256, relative to `out`.
    pub uploads: Vec<assemble::Upload>,
    /// The same, with the archive the uploads make and the limit they
    /// were cut to (`uploads.json`).
    #[serde(skip)]
    pub delivery: assemble::Uploads,
    /// What the user should know that did not stop the build.
    pub warnings: Vec<String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        action: "staging the bundle in",
        path: path.to_path_buf(),
        source,
    }
}

/// Run the whole pipeline and write `out/<name>/` and `out/<name>.<ext>`.
/// `recipe` and `target` come from [`load`]; `fetcher` from [`fetcher`].
pub async fn build(
    options: &Options,
    recipe: &Recipe,
    target: &Target,
    fetcher: Arc<Fetcher>,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
) -> Result<BuildOutput, Error> {
    // Wheels downloaded during resolution have their ELF files read at
    // once, while resolution goes on; the fetch stage waits for the rest.
    let scans = Arc::new(WheelScans::new(fetcher.cache()));
    let after_fetch = {
        let scans = scans.clone();
        AfterFetch(Arc::new(move |blob: Blob| {
            let scans = scans.clone();
            tokio::spawn(async move { scans.scan(&blob).await });
        }))
    };
    let plan = match &options.locked {
        Some(path) => read_lock(path, recipe, target, options.locked_as_is)?,
        None => {
            make_plan(
                &Options {
                    fetch_ahead: true,
                    ..options.clone()
                },
                recipe,
                target,
                fetcher.clone(),
                reporter.clone(),
                cancel,
                Some(after_fetch),
            )
            .await?
        }
    };
    fetch_and_assemble(options, &plan, target, fetcher, reporter, scans).await
}

/// Fetch, stage, check and assemble an already resolved Plan.
pub async fn build_plan(
    options: &Options,
    plan: &Plan,
    target: &Target,
    fetcher: Arc<Fetcher>,
    reporter: Arc<dyn Reporter>,
) -> Result<BuildOutput, Error> {
    let scans = Arc::new(WheelScans::new(fetcher.cache()));
    fetch_and_assemble(options, plan, target, fetcher, reporter, scans).await
}

/// The manifest of a plan's staged files.
fn manifest_of(
    plan: &Plan,
    files: Vec<assemble::FileEntry>,
    apt: Vec<crate::model::manifest::AptPackage>,
) -> Manifest {
    Manifest {
        schema: MANIFEST_SCHEMA,
        name: plan.name.clone(),
        created_by: format!("bundle {}", env!("CARGO_PKG_VERSION")),
        target: plan.target.clone(),
        requirements: plan.requirements.clone(),
        files,
        excluded: plan.excluded.clone(),
        replaced: plan.replaced.clone(),
        checks: plan.checks.clone(),
        verify: plan.verify.clone(),
        apt,
    }
}

/// [`build_plan`], with the wheel scans that resolution may have started.
async fn fetch_and_assemble(
    options: &Options,
    plan: &Plan,
    target: &Target,
    fetcher: Arc<Fetcher>,
    reporter: Arc<dyn Reporter>,
    scans: Arc<WheelScans>,
) -> Result<BuildOutput, Error> {
    check_format(options.format, target)?;
    let inputs = output_inputs(options, plan, target);
    if let Some(done) = up_to_date(options, plan, inputs.as_deref(), &fetcher) {
        return Ok(done);
    }
    // Stage into a temporary folder beside the output; renamed in at the
    // end. Wheels are copied in as they arrive.
    let staging = staging_dir(&options.out)?;
    let root = staging.path().join(&plan.name);
    let wheels_dir = root.join("wheels");
    let made = if plan.wheels.is_empty() {
        &root
    } else {
        &wheels_dir
    };
    std::fs::create_dir_all(made).map_err(io_err(made))?;
    let fetched = fetch_all(plan, target, &fetcher, &reporter, &wheels_dir, &scans).await?;

    reporter.stage(Stage::Stage);
    let mut runner = DiskRunner {
        plan,
        target,
        fetcher: &fetcher,
        reporter: reporter.as_ref(),
        wheel_blobs: &fetched.wheels,
        copied: &fetched.copied,
        release_blobs: &fetched.releases,
        npm_blobs: &fetched.npm,
        runtime_blob: fetched.runtime.as_ref(),
        warnings: Vec::new(),
        root: &root,
        entries: BTreeMap::new(),
        system_libs: BTreeSet::new(),
        apt_installed: Vec::new(),
    };
    crate::stage::run_all(&mut runner, &crate::stage::steps(plan)).await?;
    let DiskRunner {
        mut entries,
        system_libs,
        apt_installed,
        warnings: staged_warnings,
        ..
    } = runner;

    reporter.stage(Stage::Check);
    let mut warnings = check_staged(
        &root,
        target,
        &system_libs,
        &fetcher,
        reporter.as_ref(),
        &mut entries,
    )?;
    warnings.splice(0..0, staged_warnings);

    reporter.stage(Stage::Assemble);
    let manifest = manifest_of(plan, entries.into_values().collect(), apt_installed);
    assemble::write_support_files(&root, &manifest)?;
    let uploads = uploads_of(options, target, &plan.name, &root, &staging, &manifest)?;
    for w in uploads_warnings(&uploads, target) {
        reporter.warn(&w);
        warnings.push(w);
    }
    assemble::write_prompt(&root, &manifest, target, &uploads)?;
    let previous = options.out.join(&plan.name);
    warn_if_other_target(&previous, &plan.target.name, reporter.as_ref());
    let bundle_dir = move_into_place(&options.out, &staging, &root, &plan.name, &uploads)?;
    let kept = Kept {
        manifest,
        delivery: uploads,
        warnings,
    };
    if let Some(inputs) = &inputs {
        assemble::stamp::record(
            fetcher.cache(),
            &options.out,
            &plan.name,
            &kept.uploads_beside(&plan.name),
            inputs,
            &kept,
        );
    }
    Ok(kept.output(&options.out, bundle_dir))
}
