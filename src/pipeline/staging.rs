//! Phase 3, stage: the bundle's folder laid out in a staging folder, from
//! the fetched files, releases, apt packages and builds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::fetching::Copied;
use super::io_err;
use crate::assemble::{FileEntry, FileKind};
use crate::config::recipe::{self};
use crate::config::target::Target;
use crate::docker::Engine;
use crate::fetch::{Blob, Fetcher};
use crate::model::plan::{Plan, PlannedApt, PlannedWheel};
use crate::report::{Reporter, Stage};
use crate::stage::apt;
use crate::stage::release;
use crate::stage::StageStep;
use crate::Error;

/// This run's staging folder in `out`, after removing those of killed runs
/// (a live run's folder is locked and left alone).
pub(super) fn staging_dir(out: &Path) -> Result<crate::fsutil::RunDir, Error> {
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
pub(super) struct DiskRunner<'a> {
    pub(super) plan: &'a Plan,
    pub(super) target: &'a Target,
    pub(super) fetcher: &'a Fetcher,
    pub(super) reporter: &'a dyn Reporter,
    pub(super) wheel_blobs: &'a [Blob],
    /// Wheels the fetch stage already copied into `root/wheels/`.
    pub(super) copied: &'a BTreeMap<usize, Copied>,
    pub(super) release_blobs: &'a [Blob],
    /// npm tarballs (the tree's order) and the runtime's.
    pub(super) npm_blobs: &'a [Blob],
    pub(super) runtime_blob: Option<&'a Blob>,
    /// What staging found that the user should know.
    pub(super) warnings: Vec<String>,
    pub(super) root: &'a Path,
    pub(super) entries: BTreeMap<String, FileEntry>,
    /// The sandbox's own libraries (for the check), once apt ran.
    pub(super) system_libs: BTreeSet<String>,
    pub(super) apt_installed: Vec<crate::model::manifest::AptPackage>,
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
            StageStep::Npm { .. } => {
                let planned = self.plan.npm.as_ref().expect("an npm step has a plan");
                let blobs = crate::stage::npm::NpmBlobs {
                    runtime: self.runtime_blob,
                    packages: self.npm_blobs,
                };
                let staged = crate::stage::npm::stage(planned, &blobs, self.root, &self.plan.name)?;
                for w in &staged.warnings {
                    self.reporter.warn(w);
                }
                self.warnings.extend(staged.warnings);
                staged.entries
            }
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
pub(super) fn stage_wheel(
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
pub(super) fn entry_of(root: &Path, path: &str, kind: FileKind) -> Result<FileEntry, Error> {
    FileEntry::of_written(root, path, kind).map_err(io_err(&root.join(path)))
}

/// `bin/<file>` for each of a release's wanted members.
pub(super) fn stage_release(
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
pub(super) type AptStaged = (
    Vec<FileEntry>,
    BTreeSet<String>,
    Vec<crate::model::manifest::AptPackage>,
);

/// Debian packages, in a container of the target's sandbox image: their
/// binaries and the libraries the sandbox lacks.
pub(super) async fn stage_apt(
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
pub(super) async fn stage_build(
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
