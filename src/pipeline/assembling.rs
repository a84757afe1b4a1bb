//! Phase 5, assemble and write: the uploads, the up-to-date check of a
//! rebuild, and the move of a finished bundle into place.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{io_err, BuildOutput, Options};
use crate::assemble::{self, Manifest};
use crate::config::target::Target;
use crate::fetch::Fetcher;
use crate::model::plan::Plan;
use crate::report::Reporter;
use crate::Error;

/// What a build leaves, as the up-to-date record keeps it.
#[derive(Serialize, serde::Deserialize)]
pub(super) struct Kept {
    pub(super) manifest: Manifest,
    pub(super) delivery: assemble::Uploads,
    pub(super) warnings: Vec<String>,
}

impl Kept {
    /// The uploads beside the bundle folder (not the folder's own files).
    pub(super) fn uploads_beside(&self, name: &str) -> Vec<String> {
        let inside = format!("{name}/");
        self.delivery
            .uploads
            .iter()
            .map(|u| u.path.clone())
            .filter(|p| !p.starts_with(&inside))
            .collect()
    }

    pub(super) fn output(self, out: &Path, bundle_dir: PathBuf) -> BuildOutput {
        let archive = self
            .delivery
            .archive
            .as_ref()
            .filter(|_| !self.delivery.split())
            .map(|a| a.path.clone());
        BuildOutput {
            manifest: self.manifest,
            bundle_dir,
            out: crate::fsutil::absolute(out),
            archive,
            uploads: self.delivery.uploads.clone(),
            delivery: self.delivery,
            warnings: self.warnings,
        }
    }
}

/// The output of the build that wrote `out/<name>` and its uploads, when
/// it had these `inputs` and none of its files has changed since.
pub(super) fn up_to_date(
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
pub(super) fn output_inputs(options: &Options, plan: &Plan, target: &Target) -> Option<String> {
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
pub(super) fn uploads_of(
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
pub(super) fn uploads_warnings(uploads: &assemble::Uploads, target: &Target) -> Vec<String> {
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

/// A bundle of this name built for another target is about to be replaced:
/// say so, naming both.
pub(super) fn warn_if_other_target(bundle_dir: &Path, target: &str, reporter: &dyn Reporter) {
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
pub(super) fn move_into_place(
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
pub(super) fn is_upload_of(file: &str, name: &str) -> bool {
    let Some(rest) = file.strip_prefix(name) else {
        return false;
    };
    let rest = match rest.rsplit_once('.') {
        Some((head, n)) if n.len() >= 3 && n.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => rest,
    };
    rest == ".zip" || rest == ".tar.gz"
}
