//! The pipeline: plan → fetch → stage → check → assemble.

use crate::error::Diagnose;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::assemble::{self, FileEntry, FileKind, Format, Manifest, MANIFEST_SCHEMA};
use crate::check;
use crate::config::recipe::Sdists;
use crate::config::recipe::{self, Recipe};
use crate::config::target::{Target, DEFAULT_TARGET};
use crate::docker::Engine;
use crate::fetch::cache::Cache;
use crate::fetch::{Blob, Fetcher};
use crate::model::plan::{Excluded, Plan, PlannedApt, PlannedSdist, PlannedWheel, PLAN_SCHEMA};
use crate::report::{Reporter, Stage};
use crate::resolve::index::{AfterFetch, Index};
use crate::resolve::ResolveError;
use crate::resolve::{self, ResolveOptions};
use crate::stage::apt;
use crate::stage::release;
use crate::stage::release::ReleaseError;
use crate::stage::sdist::{SdistBuilder, SdistRef};
use crate::stage::StageStep;
use crate::Error;

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

/// Read the recipe(s) and the target the options name.
pub fn load(options: &Options) -> Result<(Recipe, Target), Error> {
    if options.args.is_empty() && options.requirement_files.is_empty() {
        return Err(Error::Usage(
            "name at least one recipe or requirement, e.g. `bundle build sqlite-utils`, or pass -r requirements.txt".into(),
        ));
    }
    let mut recipe = recipe_of(options)?;
    recipe.name = match &options.name {
        Some(n) => n.clone(),
        None => default_name(&recipe.name),
    };
    check_name(&recipe.name)?;
    let target_name = options
        .target
        .clone()
        .or_else(|| recipe.target.clone())
        .unwrap_or_else(|| DEFAULT_TARGET.to_string());
    let target = Target::load(&target_name)?;
    if let Some((file, spec)) = &recipe.pypi.requires_python {
        if target.has_python && crate::resolve::index::python_excluded(spec, &target.python) {
            return Err(Error::Usage(format!(
                "{file}: requires-python `{spec}` excludes Python {} of target {}: build for a target whose Python it allows (--target)",
                target.python, target.name
            )));
        }
    }
    if !target.has_python && !recipe.pypi.requirements.is_empty() {
        return Err(Error::Usage(format!(
            "target {} has no Python (python = \"none\"), so it cannot install the Python packages {} asks for ({}); build them for a target with Python, or bundle only releases and apt packages for this one",
            target.name,
            recipe.name,
            recipe
                .pypi
                .requirements
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok((recipe, target))
}

/// The recipe the options name: recipes and requirements on the command
/// line, projects (`.`, `pyproject.toml`), `-r` files, `-c` constraints,
/// `--exclude-newer`.
/// The requirement that bundles a project itself: `name[extras] @` its
/// folder packed as an sdist (in the cache), which is built in the target's
/// image; its dependencies then come from the built wheel, dynamic or not.
fn project_requirement(
    project: crate::config::requirements::Project,
    pyproject: &Path,
    options: &Options,
) -> Result<pep508_rs::Requirement<pep508_rs::VerbatimUrl>, Error> {
    use crate::config::requirements::RequirementsError;
    let bad = |message: String| RequirementsError::Pyproject {
        file: project.file.clone(),
        message,
    };
    let version = project.version.clone().ok_or_else(|| {
        bad("its version is dynamic (the build backend computes it), and bundle builds a project whose [project].version is set: set it, or build the wheel and name it (`name @ ./dist/name-1.0-py3-none-any.whl`), or pass --no-install-project to bundle its dependencies only".into())
    })?;
    let dir = match pyproject.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let packed = crate::config::project::pack(
        dir,
        &project.name,
        &version,
        &options.cache_dir.join("projects"),
    )?;
    let url = reqwest::Url::from_file_path(crate::fsutil::absolute(&packed))
        .map_err(|()| bad(format!("{} is not an absolute path", packed.display())))?;
    let extras = if options.extras.is_empty() {
        String::new()
    } else {
        format!("[{}]", options.extras.join(","))
    };
    let text = format!("{}{extras} @ {url}", project.name);
    std::str::FromStr::from_str(&text)
        .map_err(|e: pep508_rs::Pep508Error| bad(format!("`{text}`: {e}")).into())
}

fn recipe_of(options: &Options) -> Result<Recipe, Error> {
    use crate::config::requirements::{pyproject_path, read_pyproject, FileRequirements};
    let (projects, items): (Vec<&String>, Vec<&String>) = options
        .args
        .iter()
        .partition(|a| pyproject_path(a).is_some());
    let mut parts: Vec<Recipe> = Vec::new();
    if !items.is_empty() {
        let items: Vec<String> = items.into_iter().cloned().collect();
        parts.push(recipe::from_args(&items, options.recipes_dir.as_deref())?);
    }
    for p in projects {
        let path = pyproject_path(p).expect("partitioned on it");
        let project = read_pyproject(&path, &options.extras)?;
        let name = project.name.clone();
        let requires_python = project.requires_python.clone();
        let requirements = if options.install_project {
            vec![project_requirement(project, &path, options)?]
        } else {
            project.dependencies_only()?
        };
        let mut recipe = Recipe::of_requirements(&name, requirements, &path.display().to_string());
        recipe.pypi.requires_python = requires_python.map(|r| (path.display().to_string(), r));
        parts.push(recipe);
    }
    if !options.extras.is_empty() && parts.iter().all(|r| !r.origin.ends_with("pyproject.toml")) {
        return Err(Error::Usage(
            "--extra applies to a project: name it (`bundle build . --extra NAME`)".into(),
        ));
    }
    let files = FileRequirements::read(&options.requirement_files, &options.constraint_files)?;
    if !files.requirements.is_empty() {
        let name = options
            .requirement_files
            .first()
            .and_then(|f| f.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "requirements".into());
        parts.push(Recipe::of_requirements(
            &name,
            files.requirements,
            "<requirements file>",
        ));
    }
    let mut parts = parts.into_iter();
    let mut recipe = parts.next().ok_or_else(|| {
        Error::Usage("nothing to bundle: the requirements files list no requirement".into())
    })?;
    for p in parts {
        recipe.merge(p);
    }
    recipe.pypi.constraints.extend(files.constraints);
    for (name, hashes) in files.hashes {
        recipe.pypi.hashes.entry(name).or_default().extend(hashes);
    }
    if let Some(date) = &options.exclude_newer {
        recipe.pypi.exclude_newer = Some(date.clone());
    }
    if let Some(sdists) = options.sdists {
        recipe.pypi.sdists = sdists;
    }
    Ok(recipe)
}

/// The archive format for a target when the user chose none: a zip, which
/// PROMPT's Python unpacks; for a target without Python, a .tar.gz, which
/// its `tar` unpacks.
pub fn default_format(target: &Target) -> Format {
    if target.has_python {
        Format::Zip
    } else {
        Format::TarGz
    }
}

/// Whether the target can unpack the format: without Python, a zip needs
/// `unzip` among its system packages.
fn check_format(format: Format, target: &Target) -> Result<(), Error> {
    if format == Format::Zip
        && !target.has_python
        && !target.system_packages.iter().any(|p| p == "unzip")
    {
        return Err(Error::Usage(format!(
            "target {} has neither Python nor unzip to unpack a .zip: use --format tar.gz (its tar unpacks that) or --format dir",
            target.name
        )));
    }
    Ok(())
}

/// The longest bundle name: it becomes a folder and archive names with
/// suffixes (`.zip.001`), which must fit in a file name.
pub const MAX_NAME: usize = 100;

/// A character a bundle name may hold.
fn plain_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')
}

/// The name made up from what was asked for (`httpx+rich`), always valid:
/// other characters become `-`, and a long one keeps its first names with
/// `+N-more` (or, for one long name, its start and a digest). Only a
/// user's own `--name` can be refused.
pub fn default_name(made: &str) -> String {
    const SHORT: usize = 60;
    const KEEP: usize = 40;
    let clean: String = made
        .chars()
        .map(|c| if plain_name_char(c) { c } else { '-' })
        .collect();
    let clean = clean.trim_start_matches(['.', '-']);
    if clean.is_empty() {
        return "bundle".into();
    }
    if clean.len() <= SHORT {
        return clean.to_string();
    }
    let parts: Vec<&str> = clean.split('+').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return "bundle".into();
    }
    let mut out = String::new();
    let mut used = 0;
    for p in &parts {
        let len = out.len() + p.len() + usize::from(!out.is_empty());
        if len > KEEP {
            break;
        }
        if !out.is_empty() {
            out.push('+');
        }
        out.push_str(p);
        used += 1;
    }
    if used == 0 {
        let digest = crate::fetch::cache::sha256_hex(clean.as_bytes());
        out = format!("{}-{}", &parts[0][..KEEP], &digest[..8]);
        used = 1;
    }
    if used < parts.len() {
        out.push_str(&format!("+{}-more", parts.len() - used));
    }
    out
}

/// The name becomes a folder, an archive name, an argument and part of
/// PROMPT.txt's code: a plain file name that no tool reads as an option.
fn check_name(name: &str) -> Result<(), Error> {
    let plain = plain_name_char;
    let why = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.starts_with(['.', '-']) {
        Some("it starts with `.` or `-`".into())
    } else if !name.chars().all(plain) {
        Some("only letters, digits and . _ + - are allowed".into())
    } else if name.len() > MAX_NAME {
        Some(format!(
            "it is {} characters long; at most {MAX_NAME}",
            name.len()
        ))
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => {
            let shown: String = name
                .chars()
                .take(60)
                .flat_map(char::escape_default)
                .collect();
            Err(Error::Usage(format!(
                "`{shown}` cannot be used as a bundle name: {why}; pass --name NAME"
            )))
        }
    }
}

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
        after_fetch,
    };
    Ok(plan(recipe, target, &plan_options, fetcher, reporter, cancel).await?)
}

/// Whether a locked version still fits what the recipe asks for: the same
/// version, `latest`, or a semver requirement it matches.
fn version_fits(asked: &str, locked: &str) -> bool {
    if asked == locked || asked == "latest" {
        return true;
    }
    match (
        semver::VersionReq::parse(asked),
        semver::Version::parse(locked),
    ) {
        (Ok(req), Ok(v)) => req.matches(&v),
        _ => false,
    }
}

/// `build --locked --name NAME` with no items: what `NAME.lock.json` holds,
/// for its own target unless `--target` names one.
pub fn load_lock_only(options: &Options) -> Result<(Recipe, Target), Error> {
    let name = options.name.clone().ok_or_else(|| {
        Error::Usage(
            "--locked with no items builds NAME.lock.json: pass --name NAME, or the items it was locked from".into(),
        )
    })?;
    check_name(&name)?;
    let lock = PathBuf::from(format!("{name}.lock.json"));
    if !lock.is_file() {
        return Err(Error::Usage(format!(
            "--locked: there is no {} here; run `bundle lock` first",
            lock.display()
        )));
    }
    let target_name = options
        .target
        .clone()
        .or_else(|| lock_target(&lock))
        .unwrap_or_else(|| DEFAULT_TARGET.to_string());
    let target = Target::load(&target_name)?;
    let recipe = Recipe::of_requirements(&name, Vec::new(), &lock.display().to_string());
    Ok((recipe, target))
}

/// Read a lock file (a saved Plan) and check it fits the request (when
/// there is one: `locked_as_is` builds it as it stands).
fn read_lock(
    path: &Path,
    recipe: &Recipe,
    target: &Target,
    locked_as_is: bool,
) -> Result<Plan, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "--locked: cannot read {}: {e}; run `bundle lock` first",
            path.display()
        ))
    })?;
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{}: not a bundle lock file: {e}", path.display())))?;
    let requirements: Vec<String> = recipe
        .pypi
        .requirements
        .iter()
        .map(|r| r.to_string())
        .collect();
    let same_releases = recipe.releases.len() == plan.releases.len()
        && recipe
            .releases
            .iter()
            .zip(&plan.releases)
            .all(|(r, l)| r.name == l.name && version_fits(&r.version, &l.version));
    let same_builds = recipe.builds.len() == plan.builds.len()
        && recipe.builds.iter().zip(&plan.builds).all(|(r, l)| {
            r.name() == l.name
                && r.packages == l.packages
                && r.script == l.script
                && r.binaries == l.binaries
                && r.features == l.features
                && version_fits(r.version.as_deref().unwrap_or("*"), &l.version)
        });
    let same_apt = plan.apt.as_ref().map(|a| (&a.packages, &a.binaries))
        == recipe.apt.as_ref().map(|a| (&a.packages, &a.binaries));
    // What changed, named: the requirements (of the recipe, a -r file or
    // the command line), or a table of the recipe.
    let mut changed = Vec::new();
    if plan.requirements != requirements && !locked_as_is {
        changed.push(format!(
            "the requirements from {} (now {}; locked {})",
            recipe.origin,
            list_or_none(&requirements),
            list_or_none(&plan.requirements)
        ));
    }
    for (same, what) in [
        (same_releases, "its [[release]] tables"),
        (same_apt, "its [apt] table"),
        (same_builds, "its [[build]] tables"),
    ] {
        if !same && !locked_as_is {
            changed.push(format!("{what} (in {})", recipe.origin));
        }
    }
    if !changed.is_empty() {
        return Err(Error::Usage(format!(
            "{} is out of date: {} changed since it was locked; run `bundle lock` again",
            path.display(),
            changed.join("; ")
        )));
    }
    if plan.target != target.summary() {
        return Err(Error::Usage(format!(
            "{} was locked for target {}, not {}; run `bundle lock` again",
            path.display(),
            plan.target.name,
            target.name
        )));
    }
    if let Some(locked) = &plan.profile {
        let now = target.profile();
        if now.digest != locked.digest {
            return Err(Error::Usage(format!(
                "{} is out of date: target {} changed since it was locked ({}); run `bundle lock` again",
                path.display(),
                target.name,
                now.changes_from(locked).join("; ")
            )));
        }
    }
    Ok(plan)
}

/// `a, b`, or `none`.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The target a lock file was made for, as it was named (`--locked`
/// builds for it unless `--target` says otherwise).
pub fn lock_target(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let plan: Plan = serde_json::from_str(&text).ok()?;
    plan.profile.map(|p| p.source)
}

/// Which file of the plan a download task brought.
enum Fetched {
    Wheel(usize),
    Release(usize),
}

/// The wheel built from a planned sdist (a cache hit when planning built it).
async fn built_wheel(
    builder: &SdistBuilder,
    w: &PlannedWheel,
    reporter: &dyn Reporter,
) -> Result<Blob, Error> {
    let sdist = w.sdist.as_ref().expect("a wheel built from an sdist");
    let b = builder
        .wheel(&SdistRef {
            filename: sdist.filename.clone(),
            url: w.url.clone(),
            sha256: Some(sdist.sha256.clone()),
        })
        .await?;
    if w.sha256.as_ref().is_some_and(|s| *s != b.sha256) {
        reporter.warn(&format!(
            "{} was rebuilt from {} and differs from the planned build (builds are not byte-reproducible)",
            b.filename, sdist.filename
        ));
    }
    Ok(Blob {
        path: b.path,
        sha256: b.sha256,
        size: b.size,
    })
}

/// A wheel copied into the staging folder as soon as it arrived: the sha256
/// and size of the bytes written there.
type Copied = (crate::model::Sha256, u64);

/// Download a wheel and copy it into `wheels_dir` while other downloads
/// run, then read its ELF files (the check stage finds the result in the
/// cache).
async fn fetched_wheel(
    f: &Fetcher,
    w: &PlannedWheel,
    wheels_dir: &Path,
    scans: &WheelScans,
) -> Result<(Blob, Option<Copied>), Error> {
    let blob = f
        .download(&w.url, w.sha256.as_ref(), w.size, &w.filename)
        .await?;
    let (from, dest) = (blob.clone(), wheels_dir.join(&w.filename));
    let copied = tokio::task::spawn_blocking(move || crate::fetch::copy_verified(&from, &dest))
        .await
        .expect("copy task panicked")?;
    scans.scan(&blob).await;
    Ok((blob, Some(copied)))
}

/// What the fetch stage brought: the wheels' and the releases' blobs, in the
/// plan's order, and the wheels already copied into the staging folder.
struct FetchedAll {
    wheels: Vec<Blob>,
    releases: Vec<Blob>,
    copied: BTreeMap<usize, Copied>,
}

/// Download every file of the plan in parallel; all verified. Each wheel
/// downloaded is copied into `wheels_dir` at once, overlapping the network.
async fn fetch_all(
    plan: &Plan,
    target: &Target,
    fetcher: &Arc<Fetcher>,
    reporter: &Arc<dyn Reporter>,
    wheels_dir: &Path,
    scans: &Arc<WheelScans>,
) -> Result<FetchedAll, Error> {
    reporter.stage(Stage::Fetch);
    let sizes: Option<u64> = plan.wheels.iter().map(|w| w.size).sum();
    reporter.fetch_planned(plan.wheels.len() + plan.releases.len(), sizes);
    for w in plan.wheels.iter().filter(|w| w.sha256.is_none()) {
        reporter.warn(&format!(
            "the index gives no sha256 for {}; the bundle records the hash of what was downloaded",
            w.filename
        ));
    }
    let mut set = tokio::task::JoinSet::new();
    let builder = plan.wheels.iter().any(|w| w.sdist.is_some()).then(|| {
        Arc::new(SdistBuilder::new(
            target,
            fetcher.clone(),
            &plan.index_url,
            reporter.clone(),
        ))
    });
    for (i, w) in plan.wheels.iter().enumerate() {
        let (f, w, builder, r) = (
            fetcher.clone(),
            w.clone(),
            builder.clone(),
            reporter.clone(),
        );
        let dir = wheels_dir.to_path_buf();
        let scans = scans.clone();
        set.spawn(async move {
            let blob = match (&w.sdist, builder) {
                (Some(_), Some(builder)) => built_wheel(&builder, &w, r.as_ref())
                    .await
                    .map(|b| (b, None)),
                _ => fetched_wheel(&f, &w, &dir, &scans).await,
            };
            (Fetched::Wheel(i), blob)
        });
    }
    for (i, r) in plan.releases.iter().enumerate() {
        let f = fetcher.clone();
        let (url, sha) = (f.mirrored(&r.url), r.sha256.clone());
        let label = url.rsplit('/').next().unwrap_or(&url).to_string();
        set.spawn(async move {
            let blob = f.download(&url, Some(&sha), None, &label).await;
            (
                Fetched::Release(i),
                blob.map(|b| (b, None)).map_err(Error::from),
            )
        });
    }
    let mut wheels: BTreeMap<usize, Blob> = BTreeMap::new();
    let mut releases: BTreeMap<usize, Blob> = BTreeMap::new();
    let mut copied = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        let (which, result) = joined.expect("download task panicked");
        let (blob, done) = result?;
        match which {
            Fetched::Wheel(i) => {
                if let Some(c) = done {
                    copied.insert(i, c);
                }
                wheels.insert(i, blob)
            }
            Fetched::Release(i) => releases.insert(i, blob),
        };
    }
    Ok(FetchedAll {
        wheels: wheels.into_values().collect(),
        releases: releases.into_values().collect(),
        copied,
    })
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

/// ELF scans of downloaded wheels: each wheel's at most once, no more at a
/// time than there are cores (the check module bounds the memory they hold
/// together). Results go to the cache, where the check stage reads them;
/// a failed scan is left for the check stage to make again and report.
struct WheelScans {
    cache: Cache,
    slots: tokio::sync::Semaphore,
    started: crate::per_key::PerKey<crate::model::Sha256, tokio::sync::OnceCell<()>>,
}

impl WheelScans {
    fn new(cache: &Cache) -> WheelScans {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        WheelScans {
            cache: cache.clone(),
            slots: tokio::sync::Semaphore::new(cores),
            started: Default::default(),
        }
    }

    /// Scan `blob` (a wheel), or wait for the scan already under way.
    async fn scan(&self, blob: &Blob) {
        self.started
            .get(&blob.sha256)
            .get_or_init(|| async {
                let _slot = self.slots.acquire().await.expect("never closed");
                let (path, sha, cache) =
                    (blob.path.clone(), blob.sha256.clone(), self.cache.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    check::scan_wheel_cached(&path, &sha, &cache)
                })
                .await;
            })
            .await;
    }
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

    reporter.stage(Stage::Assemble);
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA,
        name: plan.name.clone(),
        created_by: format!("bundle {}", env!("CARGO_PKG_VERSION")),
        target: plan.target.clone(),
        requirements: plan.requirements.clone(),
        files: entries.into_values().collect(),
        excluded: plan.excluded.clone(),
        replaced: plan.replaced.clone(),
        checks: plan.checks.clone(),
        verify: plan.verify.clone(),
        apt: apt_installed,
    };
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

/// What a build leaves, as the up-to-date record keeps it.
#[derive(Serialize, serde::Deserialize)]
struct Kept {
    manifest: Manifest,
    delivery: assemble::Uploads,
    warnings: Vec<String>,
}

impl Kept {
    /// The uploads beside the bundle folder (not the folder's own files).
    fn uploads_beside(&self, name: &str) -> Vec<String> {
        let inside = format!("{name}/");
        self.delivery
            .uploads
            .iter()
            .map(|u| u.path.clone())
            .filter(|p| !p.starts_with(&inside))
            .collect()
    }

    fn output(self, out: &Path, bundle_dir: PathBuf) -> BuildOutput {
        let archive = self
            .delivery
            .archive
            .as_ref()
            .filter(|_| !self.delivery.split())
            .map(|a| a.path.clone());
        BuildOutput {
            manifest: self.manifest,
            bundle_dir,
            out: std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf()),
            archive,
            uploads: self.delivery.uploads.clone(),
            delivery: self.delivery,
            warnings: self.warnings,
        }
    }
}

/// The output of the build that wrote `out/<name>` and its uploads, when
/// it had these `inputs` and none of its files has changed since.
fn up_to_date(
    options: &Options,
    plan: &Plan,
    inputs: Option<&str>,
    fetcher: &Fetcher,
) -> Option<BuildOutput> {
    let beside = |k: &Kept| k.uploads_beside(&plan.name);
    let kept =
        assemble::stamp::unchanged(fetcher.cache(), &options.out, &plan.name, inputs?, beside)?;
    let dir = options.out.join(&plan.name);
    tracing::info!(
        "{} and its uploads are up to date: the same inputs wrote them, and none has changed since",
        dir.display()
    );
    Some(kept.output(&options.out, dir))
}

/// Everything a build's output depends on besides the files it fetches
/// (which the plan pins): None when a step's result is not pinned by the
/// plan (an sdist, apt or `[[build]]` step), which always runs.
fn output_inputs(options: &Options, plan: &Plan, target: &Target) -> Option<String> {
    if plan.apt.is_some()
        || !plan.builds.is_empty()
        || plan.wheels.iter().any(|w| w.sdist.is_some())
    {
        return None;
    }
    Some(
        serde_json::json!({
            "v": 1,
            "bundle": env!("CARGO_PKG_VERSION"),
            "plan": plan,
            "target": target.profile().digest.to_string(),
            "upload_dir": target.upload_dir,
            "user": target.user,
            "python": target.has_python,
            "limit": options.max_upload.unwrap_or(target.max_file_bytes),
            "format": format!("{:?}", options.format),
            "split": options.split,
            "epoch": assemble::source_date_epoch(),
        })
        .to_string(),
    )
}

/// Write the archive (or its volumes) into the staging folder, within the
/// upload limit; nothing for a request the target already satisfies.
fn uploads_of(
    options: &Options,
    target: &Target,
    name: &str,
    root: &Path,
    staging: &crate::fsutil::RunDir,
    manifest: &Manifest,
) -> Result<assemble::Uploads, Error> {
    let limit = options.max_upload.unwrap_or(target.max_file_bytes);
    if manifest.files.is_empty() {
        return Ok(assemble::Uploads {
            uploads: Vec::new(),
            archive: None,
            max_file_bytes: limit,
        });
    }
    Ok(assemble::write_uploads(
        root,
        name,
        options.format,
        staging.path(),
        limit,
        options.split,
    )?)
}

/// A folder bundle's files over the limit cannot be split: say so.
fn uploads_warnings(uploads: &assemble::Uploads, target: &Target) -> Vec<String> {
    if uploads.archive.is_some() {
        return Vec::new();
    }
    uploads
        .uploads
        .iter()
        .filter(|u| u.size > uploads.max_file_bytes)
        .map(|u| {
            format!(
                "{} is {} bytes, over target {}'s upload limit of {} bytes; a folder bundle cannot be split (use --format zip)",
                u.path, u.size, target.name, uploads.max_file_bytes
            )
        })
        .collect()
}

/// This run's staging folder in `out`, after removing those of killed runs
/// (a live run's folder is locked and left alone).
fn staging_dir(out: &Path) -> Result<crate::fsutil::RunDir, Error> {
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let reaped = crate::fsutil::reap(out, ".bundle-", std::time::Duration::from_secs(3600));
    if reaped > 0 {
        tracing::info!(
            "removed {reaped} staging folder(s) left in {} by killed runs",
            out.display()
        );
    }
    crate::fsutil::RunDir::create(out, ".bundle-").map_err(io_err(out))
}

/// Runs staging steps on disk (and, for apt, in Docker), collecting the
/// manifest's entries.
struct DiskRunner<'a> {
    plan: &'a Plan,
    target: &'a Target,
    fetcher: &'a Fetcher,
    reporter: &'a dyn Reporter,
    wheel_blobs: &'a [Blob],
    /// Wheels the fetch stage already copied into `root/wheels/`.
    copied: &'a BTreeMap<usize, Copied>,
    release_blobs: &'a [Blob],
    root: &'a Path,
    entries: BTreeMap<String, FileEntry>,
    /// The sandbox's own libraries (for the check), once apt ran.
    system_libs: BTreeSet<String>,
    apt_installed: Vec<crate::model::manifest::AptPackage>,
}

impl crate::stage::StageRunner for DiskRunner<'_> {
    type Error = Error;

    async fn run(&mut self, step: &StageStep) -> Result<(), Error> {
        let entries = match step {
            StageStep::CopyWheel { index, .. } => {
                vec![stage_wheel(
                    &self.plan.wheels[*index],
                    &self.wheel_blobs[*index],
                    self.copied.get(index),
                    self.target,
                    self.root,
                )?]
            }
            StageStep::ExtractRelease { index, .. } => stage_release(
                &self.plan.releases[*index],
                &self.release_blobs[*index],
                self.root,
            )?,
            StageStep::Apt { .. } => {
                let planned = self.plan.apt.as_ref().expect("an apt step has a plan");
                self.reporter.stage(Stage::Build);
                let (entries, system, installed) =
                    stage_apt(planned, self.target, self.fetcher, self.reporter, self.root).await?;
                self.system_libs = system;
                self.apt_installed = installed;
                entries
            }
            StageStep::Build { index, .. } => {
                self.reporter.stage(Stage::Build);
                let (entries, system) = stage_build(
                    &self.plan.builds[*index],
                    self.target,
                    self.fetcher,
                    self.reporter,
                    self.root,
                )
                .await?;
                self.system_libs.extend(system);
                entries
            }
        };
        for e in entries {
            self.entries.insert(e.path.clone(), e);
        }
        Ok(())
    }
}

/// `wheels/<file>`: the verified blob copied, hashed as it is written (by
/// the fetch stage, when `copied`).
fn stage_wheel(
    w: &PlannedWheel,
    blob: &Blob,
    copied: Option<&Copied>,
    target: &Target,
    root: &Path,
) -> Result<FileEntry, Error> {
    let wheels_dir = root.join("wheels");
    std::fs::create_dir_all(&wheels_dir).map_err(io_err(&wheels_dir))?;
    let dest = wheels_dir.join(&w.filename);
    // The manifest's hash is that of the bytes written here.
    let (sha256, size) = match copied {
        Some(c) => c.clone(),
        None => crate::fetch::copy_verified(blob, &dest)?,
    };
    crate::fsutil::set_mode(&dest, 0o644).map_err(io_err(&dest))?;
    let mut entry = FileEntry::new(
        format!("wheels/{}", w.filename),
        FileKind::Wheel,
        sha256,
        size,
    )
    .from_package(&w.package, Some(w.version.clone()))
    .with_source(&w.url);
    entry.built_from = w.sdist.as_ref().map(|s| s.filename.clone());
    let facts = crate::stage::wheel::facts(&dest);
    entry.modules = facts.modules;
    entry.scripts = facts.scripts;
    // What must be installed beside it (the resolver read the same
    // METADATA): install.py checks that before installing anything.
    entry.requires =
        crate::resolve::index::base_requirements_of_wheel_file(&dest, &target.marker_env())
            .unwrap_or_default();
    Ok(entry)
}

/// The entry of a file already written into the bundle, hashed from disk.
fn entry_of(root: &Path, path: &str, kind: FileKind) -> Result<FileEntry, Error> {
    let full = root.join(path);
    let (sha256, size) = crate::model::Sha256::of_file(&full).map_err(io_err(&full))?;
    Ok(FileEntry::new(path, kind, sha256, size))
}

/// `bin/<file>` for each of a release's wanted members.
fn stage_release(
    r: &crate::model::plan::PlannedRelease,
    blob: &Blob,
    root: &Path,
) -> Result<Vec<FileEntry>, Error> {
    let bin = root.join("bin");
    let mut entries = Vec::new();
    for file in release::extract(r, &blob.path, &bin)? {
        entries.push(
            entry_of(root, &format!("bin/{file}"), FileKind::Binary)?
                .from_package(&r.name, Some(r.version.clone()))
                .with_source(&r.url),
        );
    }
    Ok(entries)
}

/// What the apt step staged: its entries, the sandbox's own libraries (for
/// the check) and the packages installed.
type AptStaged = (
    Vec<FileEntry>,
    BTreeSet<String>,
    Vec<crate::model::manifest::AptPackage>,
);

/// Debian packages, in a container of the target's sandbox image: their
/// binaries and the libraries the sandbox lacks.
async fn stage_apt(
    planned: &PlannedApt,
    target: &Target,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
    root: &Path,
) -> Result<AptStaged, Error> {
    let engine = Engine::connect("apt recipes need").await?;
    let apt = recipe::Apt {
        packages: planned.packages.clone(),
        binaries: planned.binaries.clone(),
        link: planned.link,
        check: Vec::new(),
    };
    let built = apt::build(
        &engine,
        target,
        &apt,
        &planned.debs,
        root,
        fetcher,
        reporter,
    )
    .await?;
    let mut entries = Vec::new();
    for f in built.files {
        let kind = if f.library {
            FileKind::Library
        } else {
            FileKind::Binary
        };
        let mut entry =
            entry_of(root, &f.path, kind)?.with_source(format!("{} in {}", f.from, target.image));
        entry.package = f.package;
        entry.version = f.version;
        entry.link = f.link;
        entries.push(entry);
    }
    Ok((entries, built.system_libraries, built.installed))
}

/// A `[[build]]`, in an image of the target: its programs and the
/// libraries the sandbox lacks, with the sandbox's own libraries.
async fn stage_build(
    planned: &crate::model::plan::PlannedBuild,
    target: &Target,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
    root: &Path,
) -> Result<(Vec<FileEntry>, BTreeSet<String>), Error> {
    let built = crate::stage::build::build(planned, target, fetcher, reporter, root).await?;
    let record = crate::stage::build::record(planned, &built);
    let mut entries = Vec::new();
    for f in &built.files.files {
        let kind = if f.library {
            FileKind::Library
        } else {
            FileKind::Binary
        };
        let mut entry = entry_of(root, &f.path, kind)?;
        entry.package = f.package.clone();
        entry.version = f.version.clone();
        entry.link = f.link;
        if f.package.as_deref() == Some(planned.name.as_str()) {
            entry.source = Some(record.from.clone());
            entry.built_from = Some(record.from.clone());
        } else {
            entry.source = Some(format!("{} in {}", f.from, record.image));
        }
        entry.build = Some(record.clone());
        entries.push(entry);
    }
    Ok((entries, built.files.system_libraries))
}

/// Check every ELF file, including shared objects inside wheels; record
/// what binaries need in their entries. Returns the warnings; an
/// incompatible file is an error.
fn check_staged(
    root: &Path,
    target: &Target,
    system_libs: &BTreeSet<String>,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
    entries: &mut BTreeMap<String, FileEntry>,
) -> Result<Vec<String>, Error> {
    let wheel_hashes: BTreeMap<String, crate::model::Sha256> = entries
        .values()
        .filter(|e| e.kind == FileKind::Wheel)
        .map(|e| (e.path.clone(), e.sha256.clone()))
        .collect();
    let infos = check::scan_dir(root, Some((&wheel_hashes, fetcher.cache())))?;
    let verdicts = check::judge_all(target, infos, system_libs);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for v in &verdicts {
        errors.extend(v.errors.iter().cloned());
        for w in &v.warnings {
            reporter.warn(w);
            warnings.push(w.clone());
        }
        if !v.missing.is_empty() {
            let w = format!(
                "{} needs {} which target {} may lack and the bundle does not carry",
                v.elf.path,
                v.missing.join(", "),
                target.name
            );
            reporter.warn(&w);
            warnings.push(w);
        }
        if let Some(e) = entries.get_mut(&v.elf.path) {
            if matches!(e.kind, FileKind::Binary | FileKind::Library) {
                e.glibc = v.elf.glibc.clone();
                e.needed = Some(v.elf.needed.clone());
            }
        }
    }
    if !errors.is_empty() {
        return Err(check::CheckError::Incompatible {
            target: target.name.clone(),
            count: errors.len(),
            details: errors.join("\n"),
        }
        .into());
    }
    Ok(warnings)
}

/// A bundle of this name built for another target is about to be replaced:
/// say so, naming both.
fn warn_if_other_target(bundle_dir: &Path, target: &str, reporter: &dyn Reporter) {
    let previous = std::fs::read_to_string(bundle_dir.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Manifest>(&t).ok());
    if let Some(m) = previous.filter(|m| m.target.name != target) {
        reporter.warn(&format!(
            "replacing {}, built for target {}, with a build for {target}; pass --name to keep both",
            bundle_dir.display(),
            m.target.name
        ));
    }
}

/// Move the staged bundle and its uploads into `out`: the old bundle, if
/// any, is swapped out, then removed with the staging folder; archives and
/// volumes of an earlier build of this name that this one does not write
/// are removed, so that `out` holds only what to upload.
fn move_into_place(
    out: &Path,
    staging: &crate::fsutil::RunDir,
    root: &Path,
    name: &str,
    uploads: &assemble::Uploads,
) -> Result<PathBuf, Error> {
    let bundle_dir = out.join(name);
    if bundle_dir.exists() {
        let old = staging.path().join(".old");
        std::fs::rename(&bundle_dir, &old).map_err(io_err(&bundle_dir))?;
    }
    std::fs::rename(root, &bundle_dir).map_err(io_err(&bundle_dir))?;
    // A folder bundle's uploads are the folder's files: no archive of an
    // earlier build may stay beside it, to be uploaded by mistake.
    let mut ours: BTreeSet<&str> = BTreeSet::new();
    if uploads.archive.is_some() {
        for u in &uploads.uploads {
            let dest = out.join(&u.path);
            let staged = staging.path().join(&u.path);
            std::fs::rename(&staged, &dest).map_err(io_err(&dest))?;
            ours.insert(u.path.as_str());
        }
    }
    for entry in std::fs::read_dir(out).map_err(io_err(out))?.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if !ours.contains(file.as_str()) && is_upload_of(&file, name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(bundle_dir)
}

/// Whether `file` is an archive or volume `bundle build` writes for `name`:
/// `<name>.zip`, `<name>.tar.gz`, or either with `.NNN`.
fn is_upload_of(file: &str, name: &str) -> bool {
    let Some(rest) = file.strip_prefix(name) else {
        return false;
    };
    let rest = match rest.rsplit_once('.') {
        Some((head, n)) if n.len() >= 3 && n.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => rest,
    };
    rest == ".zip" || rest == ".tar.gz"
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

impl Diagnose for PlanError {
    fn exit_code(&self) -> i32 {
        match self {
            PlanError::Resolve(e) => e.exit_code(),
            PlanError::Release { error, .. } => error.exit_code(),
            PlanError::Index(e) => e.exit_code(),
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
        excluded,
        profile: Some(target.profile()),
        replaced,
        checks: recipe.checks(),
        verify: recipe.verify.clone(),
    })
}

/// The wheels that bring another version of a package the target has.
fn replaced(wheels: &[PlannedWheel], target: &Target) -> Vec<crate::model::plan::Replaced> {
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
fn check_pinned_hash(recipe: &Recipe, w: &PlannedWheel) -> Result<(), PlanError> {
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
async fn remembered_wheels(
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
async fn plan_wheels(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_up_name_is_always_a_valid_one() {
        assert_eq!(default_name("httpx+rich"), "httpx+rich");
        let many: Vec<String> = (0..12)
            .map(|i| format!("package-with-a-long-name-{i}"))
            .collect();
        let name = default_name(&many.join("+"));
        assert_eq!(name, "package-with-a-long-name-0+11-more");
        assert!(check_name(&name).is_ok());
        let long = "x".repeat(150);
        let name = default_name(&format!("{long}+rich"));
        assert!(name.starts_with(&"x".repeat(40)), "{name}");
        assert!(name.ends_with("+1-more"), "{name}");
        assert!(check_name(&name).is_ok(), "{name}");
        assert_eq!(default_name("my recipe"), "my-recipe");
        assert_eq!(default_name("..."), "bundle");
        assert_eq!(default_name(&"+".repeat(70)), "bundle");
        // A user's own name is checked as given.
        assert!(check_name(&"y".repeat(MAX_NAME + 1)).is_err());
    }
}
