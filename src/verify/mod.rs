//! `bundle verify`: run a bundle in a faithful copy of the target sandbox
//! (no network, the target's user, files arriving in its upload folder, its
//! Python and the packages it already has, its command time limit) and
//! report each step.

use crate::error::Diagnose;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pep508_rs::{Requirement, VerbatimUrl};
use serde::Serialize;

use crate::archive::{ArchiveError, ArchiveKind};
use crate::assemble::{self, FileKind, Manifest, Upload, Uploads};
use crate::config::target::Target;
use crate::docker::Run;
use crate::docker::{sh_quote, tar_of, ContainerSpec, DockerError, Engine, ExecOptions};
use crate::fetch::Fetcher;
use crate::report::{Reporter, Stage, Step as Progress};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("{path} is not a bundle: {message}")]
    NotABundle { path: PathBuf, message: String },
    #[error("the preinstalled packages of target {target} cannot be prepared: {message}")]
    Preinstalled { target: String, message: String },
    #[error("{} file(s) of the bundle differ from its manifest.json:\n  {}", .files.len(), .files.join("\n  "))]
    Tampered { files: Vec<String> },
    #[error("this bundle was made for {target} (CPython {expected}), but the sandbox image's Python is {found}")]
    WrongPython {
        target: String,
        expected: String,
        found: String,
    },
    #[error("verify failed at step `{step}` ({failed} of {total} steps failed)")]
    Failed {
        step: String,
        failed: usize,
        total: usize,
    },
}

impl Diagnose for VerifyError {
    /// Not a bundle (a missing path, a folder without manifest.json) is bad
    /// input; the rest, failed work.
    fn exit_code(&self) -> i32 {
        match self {
            VerifyError::NotABundle { .. } => crate::error::BAD_INPUT,
            VerifyError::Docker(e) => e.exit_code(),
            _ => crate::error::WORK_FAILED,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            VerifyError::Docker(e) => e.hint(),
            VerifyError::NotABundle { .. } => Some(
                "pass a folder or archive written by `bundle build` (it holds manifest.json)"
                    .into(),
            ),
            VerifyError::Failed { .. } => Some(
                "the step's own output is above; `--keep` leaves the container for a look inside"
                    .into(),
            ),
            VerifyError::Preinstalled { .. } => None,
            VerifyError::WrongPython { .. } => Some(
                "the target profile's `python` must be the image's: build for a profile that matches it (`bundle target capture` prints one from inside the sandbox)".into(),
            ),
            VerifyError::Tampered { .. } => Some(
                "the bundle was changed after `bundle build` wrote it; build it again rather than upload it".into(),
            ),
        }
    }
}

/// One step of a verify run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub seconds: f64,
    /// The command run in the sandbox, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its output (the end of it, when long).
    pub output: String,
}

/// The result of a verify run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub bundle: String,
    pub target: String,
    pub image: String,
    pub user: String,
    pub upload_dir: String,
    pub ok: bool,
    pub steps: Vec<Step>,
    /// The container, when `--keep` left it running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// True when this is the kept report of an identical passing run: the
    /// same uploaded bytes, PROMPT.txt, target and sandbox image (`--fresh`
    /// runs it again).
    #[serde(default)]
    pub cached: bool,
}

impl Report {
    /// The first failed step, if any.
    pub fn failure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| !s.ok)
    }

    /// The error a failed run ends with, if a step failed.
    pub fn error(&self) -> Option<VerifyError> {
        self.failure().map(|s| VerifyError::Failed {
            step: s.name.clone(),
            failed: self.steps.iter().filter(|s| !s.ok).count(),
            total: self.steps.len(),
        })
    }
}

/// Files to upload: (path in the upload folder, the file on the host).
type UploadFiles = Vec<(String, PathBuf)>;

/// A bundle as uploaded: the files to upload, and its contents read on the
/// host (never run here).
struct Bundle {
    name: String,
    manifest: Manifest,
    /// In upload order; a folder bundle is uploaded as `<name>/...`.
    uploads: UploadFiles,
    /// What the uploads are (an archive, its volumes, or a folder's files).
    delivery: Uploads,
    /// PROMPT.txt, when the bundle folder has one; else it is written
    /// afresh for the target, as `bundle build` writes it.
    prompt: Option<String>,
    /// The bundle's folder on the host (unpacked from the uploads if need be).
    dir: PathBuf,
    _unpacked: Option<tempfile::TempDir>,
}

fn not_a_bundle(path: &Path) -> impl Fn(String) -> VerifyError + '_ {
    move |message| VerifyError::NotABundle {
        path: path.to_path_buf(),
        message,
    }
}

/// The manifest of a bundle folder or archive.
pub fn manifest_of(path: &Path) -> Result<Manifest, VerifyError> {
    read_bundle(path).map(|b| b.manifest)
}

/// The uploaded archive's volumes, when `path` is one of them
/// (`name.zip.001`): all of them, in order, from 001 on.
fn volumes_of(path: &Path) -> Option<Vec<PathBuf>> {
    let file = path.file_name()?.to_str()?;
    let (archive, n) = file.rsplit_once('.')?;
    if n.len() < 3 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    loop {
        let p = dir.join(assemble::volume_name(archive, out.len() + 1));
        if !p.is_file() {
            return Some(out);
        }
        out.push(p);
    }
}

/// Hash one upload (streamed), checking it against what `bundle build`
/// listed.
fn check_upload(path: &Path, listed: Option<&Upload>) -> Result<Upload, String> {
    let (sha256, size) =
        crate::model::Sha256::of_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(u) = listed {
        if sha256 != u.sha256 || size != u.size {
            return Err(format!(
                "{} (changed: sha256 {sha256}, uploads.json {})",
                u.path, u.sha256
            ));
        }
    }
    Ok(Upload {
        path: name,
        size,
        sha256,
    })
}

/// Join archive uploads into one file in `tmp` (streamed) and unpack it
/// there: the bundle the sandbox will see. Returns its folder and the
/// joined archive's digest and size.
fn unpack_uploads(
    archive: &str,
    uploads: &[(String, PathBuf)],
    tmp: &Path,
) -> Result<(PathBuf, crate::model::Sha256, u64), String> {
    let joined = tmp.join(archive);
    let mut out = std::fs::File::create(&joined).map_err(|e| e.to_string())?;
    let mut whole = crate::model::hash::Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    for (_, from) in uploads {
        let mut file = std::fs::File::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            std::io::Write::write_all(&mut out, &buf[..n]).map_err(|e| e.to_string())?;
        }
    }
    drop(out);
    let (sha256, size) = whole.finish();
    let into = tmp.join("unpacked");
    unpack_archive(&joined, &into)?;
    std::fs::remove_file(&joined).map_err(|e| e.to_string())?;
    let top: Vec<PathBuf> = std::fs::read_dir(&into)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    match top.as_slice() {
        [dir] => Ok((dir.clone(), sha256, size)),
        _ => Err("the archive holds no <name>/manifest.json".into()),
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .map_err(|e| format!("manifest.json: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("manifest.json: {e}"))
}

/// A bundle folder's uploads: those its uploads.json lists (found beside
/// the folder, checked against their sizes and sha256), or, for a folder
/// without one, its files under the manifest's name.
fn folder_uploads(dir: &Path, manifest: &Manifest) -> Result<(Uploads, UploadFiles), VerifyError> {
    let bad = not_a_bundle(dir);
    let delivery = match Uploads::read(dir) {
        Some(listed) => listed.map_err(&bad)?,
        None => Uploads {
            uploads: Vec::new(),
            archive: None,
            max_file_bytes: u64::MAX,
        },
    };
    if delivery.archive.is_some() {
        // An archive's uploads are files beside the folder, never paths.
        if let Some(u) = delivery
            .uploads
            .iter()
            .find(|u| u.path.contains(['/', '\\']) || u.path.starts_with('.') || u.path.is_empty())
        {
            return Err(bad(format!(
                "{}: `{}` is not a file name beside the folder",
                assemble::UPLOADS_JSON,
                u.path
            )));
        }
    }
    let mut uploads = Vec::new();
    let mut changed = Vec::new();
    let parent = dir.parent().unwrap_or(Path::new(""));
    let beside = |u: &Upload| parent.join(&u.path).is_file();
    // A folder copied without its archive is uploaded as a folder.
    let delivery = if delivery.archive.is_some() && !delivery.uploads.iter().any(beside) {
        Uploads {
            uploads: Vec::new(),
            archive: None,
            max_file_bytes: delivery.max_file_bytes,
        }
    } else {
        delivery
    };
    if delivery.archive.is_some() {
        for u in &delivery.uploads {
            if !beside(u) {
                changed.push(format!("{} (missing beside the folder)", u.path));
                continue;
            }
            let from = parent.join(&u.path);
            match check_upload(&from, Some(u)) {
                Ok(_) => uploads.push((u.path.clone(), from)),
                Err(e) => changed.push(e),
            }
        }
    } else {
        // Under the manifest's name, which PROMPT.txt's paths use, whatever
        // the folder is called here.
        let files = crate::fsutil::relative_files(dir).map_err(|e| bad(e.to_string()))?;
        for (rel, full) in files {
            if rel == "PROMPT.txt" || rel == assemble::UPLOADS_JSON {
                continue;
            }
            uploads.push((format!("{}/{rel}", manifest.name), full));
        }
    }
    let delivery = if delivery.archive.is_none() {
        Uploads {
            uploads: uploads
                .iter()
                .map(|(path, from)| {
                    check_upload(from, None).map(|u| Upload {
                        path: path.clone(),
                        ..u
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(&bad)?,
            ..delivery
        }
    } else {
        delivery
    };
    if !changed.is_empty() {
        return Err(VerifyError::Tampered { files: changed });
    }
    Ok((delivery, uploads))
}

fn read_bundle(path: &Path) -> Result<Bundle, VerifyError> {
    let bad = not_a_bundle(path);
    let tmp = tempfile::tempdir().map_err(|e| bad(e.to_string()))?;
    if path.is_dir() {
        let manifest = read_manifest(path).map_err(&bad)?;
        let (delivery, uploads) = folder_uploads(path, &manifest)?;
        let listed = Uploads::read(path).and_then(Result::ok);
        // PROMPT.txt speaks of the uploads it was written for; a folder
        // uploaded without its archive gets its own, as a folder bundle's.
        let prompt = if listed.is_some_and(|l| l.archive.is_some() != delivery.archive.is_some()) {
            None
        } else {
            Some(
                std::fs::read_to_string(path.join("PROMPT.txt"))
                    .map_err(|e| bad(format!("PROMPT.txt: {e}")))?,
            )
        };
        // What the sandbox unpacks is what is checked and read.
        let (dir, unpacked) = match &delivery.archive {
            Some(a) => (
                unpack_uploads(&a.path, &uploads, tmp.path())
                    .map_err(&bad)?
                    .0,
                Some(tmp),
            ),
            None => (path.to_path_buf(), None),
        };
        return Ok(Bundle {
            name: manifest.name.clone(),
            manifest,
            uploads,
            delivery,
            prompt,
            dir,
            _unpacked: unpacked,
        });
    }
    // An archive, or one of its volumes: upload it (them) as they are.
    let files = volumes_of(path).unwrap_or_else(|| vec![path.to_path_buf()]);
    let mut uploads = Vec::new();
    let mut listed = Vec::new();
    for f in &files {
        let u = check_upload(f, None).map_err(&bad)?;
        uploads.push((u.path.clone(), f.clone()));
        listed.push(u);
    }
    let archive_name = if volumes_of(path).is_some() {
        listed[0]
            .path
            .rsplit_once('.')
            .map_or("", |(a, _)| a)
            .to_string()
    } else {
        listed[0].path.clone()
    };
    let (dir, sha256, size) = unpack_uploads(&archive_name, &uploads, tmp.path()).map_err(&bad)?;
    let archive = Upload {
        path: archive_name.clone(),
        size,
        sha256,
    };
    let manifest = read_manifest(&dir).map_err(&bad)?;
    // Archives made before PROMPT.txt moved out of them still hold it.
    let prompt = std::fs::read_to_string(dir.join("PROMPT.txt")).ok();
    Ok(Bundle {
        name: manifest.name.clone(),
        manifest,
        uploads,
        delivery: Uploads {
            max_file_bytes: listed.iter().map(|u| u.size).max().unwrap_or(0),
            uploads: listed,
            archive: Some(archive),
        },
        prompt,
        dir,
        _unpacked: Some(tmp),
    })
}

/// Unpack a bundle archive (.zip or .tar.gz) on the host to read it;
/// members that would land outside `dest` are refused, and the archive
/// limits apply.
fn unpack_archive(path: &Path, dest: &Path) -> Result<(), String> {
    let name = path.to_string_lossy();
    let kind = ArchiveKind::from_name(&name);
    if !matches!(kind, ArchiveKind::Zip | ArchiveKind::TarGz) {
        return Err("expected a bundle folder, a .zip or a .tar.gz".into());
    }
    crate::archive::unpack_files(kind, path, crate::archive::Limits::from_env(), dest)
        .map(drop)
        .map_err(|e| match e {
            ArchiveError::Unsafe { member, why } => {
                format!("`{member}` would be written outside its folder ({why})")
            }
            other => other.to_string(),
        })
}

/// Files of the bundle that are not what its manifest says: changed,
/// missing, or named by a path that leaves the bundle.
fn tampered_files(dir: &Path, manifest: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for f in &manifest.files {
        let Ok(rel) = crate::archive::safe_member_path(&f.path) else {
            out.push(format!("{} (a path outside the bundle)", f.path));
            continue;
        };
        match crate::model::Sha256::of_file(&dir.join(rel)) {
            Ok((h, _)) if h == f.sha256 => {}
            Ok((h, _)) => out.push(format!(
                "{} (changed: sha256 {h}, manifest {})",
                f.path, f.sha256
            )),
            Err(_) => out.push(format!("{} (missing)", f.path)),
        }
    }
    out
}

/// The prompt's Python code, split where it starts the installer:
/// (unpack part, install part).
fn prompt_code(prompt: &str) -> Option<PromptCode> {
    for (fence, interpreter, marker) in [
        ("```python\n", "python3", "import subprocess"),
        ("```sh\n", "sh", "\nsh "),
    ] {
        let Some(at) = prompt.find(fence) else {
            continue;
        };
        let start = at + fence.len();
        let end = start + prompt[start..].find("```")?;
        let code = &prompt[start..end];
        let (unpack, install) = match code.rfind(marker) {
            Some(i) if marker.starts_with('\n') => (&code[..i + 1], &code[i + 1..]),
            Some(i) => (&code[..i], &code[i..]),
            None if marker.starts_with('\n') && code.starts_with("sh ") => ("", code),
            None => ("", code),
        };
        return Some(PromptCode {
            interpreter,
            unpack: unpack.to_string(),
            install: install.to_string(),
        });
    }
    None
}

/// The code block of a PROMPT.txt, split where it starts the installer.
struct PromptCode {
    /// `python3` or `sh`.
    interpreter: &'static str,
    /// Checks and unpacks the uploads (empty for a folder).
    unpack: String,
    /// Runs install.py or install.sh.
    install: String,
}

/// What `verify` needs besides the bundle.
pub struct VerifyOptions {
    pub index_url: String,
    pub keep: bool,
    /// Run even when an identical run passed before.
    pub fresh: bool,
}

/// Verify the bundle at `path` in `target`'s sandbox.
pub async fn verify(
    path: &Path,
    target: &Target,
    fetcher: Arc<Fetcher>,
    reporter: Arc<dyn Reporter>,
    options: &VerifyOptions,
) -> Result<Report, VerifyError> {
    reporter.stage(Stage::Verify);
    let mut bundle = read_bundle(path)?;
    if bundle.manifest.files.is_empty() {
        return Err(VerifyError::NotABundle {
            path: path.to_path_buf(),
            message:
                "it holds nothing to upload: everything it asks for is preinstalled on its target"
                    .into(),
        });
    }
    if bundle.prompt.is_none() {
        bundle.prompt = Some(assemble::prompt_text(
            &bundle.manifest,
            target,
            &bundle.delivery,
        ));
    }
    // Every byte is checked against the manifest before anything runs.
    let tampered = tampered_files(&bundle.dir, &bundle.manifest);
    if !tampered.is_empty() {
        return Err(VerifyError::Tampered { files: tampered });
    }
    let engine = Engine::connect("bundle verify needs").await?;
    let step = Progress::start(reporter.as_ref(), "sandbox image");
    let base = crate::docker::sandbox::sandbox_image(&engine, target, reporter.as_ref()).await?;
    let image = preinstalled_image(
        &engine,
        target,
        &bundle.manifest,
        &base,
        &fetcher,
        reporter.as_ref(),
        options,
    )
    .await?;
    drop(step);
    let key = result_key(&bundle, target, &engine, &image).await?;
    if !options.keep && !options.fresh {
        if let Some(mut report) = cached_report(fetcher.cache(), &key) {
            tracing::info!("verify: an identical run passed before; its report stands");
            report.bundle = path.display().to_string();
            report.cached = true;
            return Ok(report);
        }
    }

    let spec = ContainerSpec {
        image: image.clone(),
        platform: target.platform.clone(),
        network: false,
        user: Some(target.user.clone()),
        purpose: "verify".into(),
    };
    let c = if options.keep {
        engine.start_kept(&spec).await?
    } else {
        engine.start(&spec).await?
    };
    let steps = run_steps(&c, &bundle, target, reporter.as_ref()).await;
    let container = if options.keep {
        c.keep();
        Some(c.id().to_string())
    } else {
        c.remove().await;
        None
    };
    let steps = steps?;
    let report = Report {
        bundle: path.display().to_string(),
        target: target.name.clone(),
        image,
        user: target.user.clone(),
        upload_dir: target.upload_dir.clone(),
        ok: steps.iter().all(|s| s.ok),
        steps,
        container,
        cached: false,
    };
    if report.ok && !options.keep {
        remember(fetcher.cache(), &key, &report);
    }
    Ok(report)
}

/// What decides a verify's outcome: the bytes uploaded (by sha256), the
/// PROMPT.txt run, the manifest whose checks run, the target as verify
/// uses it, and the sandbox image (by id: a rebuilt image is another input).
async fn result_key(
    bundle: &Bundle,
    target: &Target,
    engine: &Engine,
    image: &str,
) -> Result<String, VerifyError> {
    let id = engine.image_id(image).await?.unwrap_or_default();
    let uploads: Vec<(&str, String)> = bundle
        .delivery
        .uploads
        .iter()
        .map(|u| (u.path.as_str(), u.sha256.to_string()))
        .collect();
    let inputs = serde_json::json!({
        "v": 1,
        "bundle": env!("CARGO_PKG_VERSION"),
        "uploads": uploads,
        "prompt": crate::model::Sha256::of(bundle.prompt.as_deref().unwrap_or("").as_bytes()).to_string(),
        // The checks and imports come from the manifest as read here.
        "manifest": crate::model::Sha256::of(&serde_json::to_vec(&bundle.manifest).unwrap_or_default()).to_string(),
        "profile": target.profile().digest.to_string(),
        "user": target.user,
        "upload_dir": target.upload_dir,
        "timeout": target.command_timeout_s,
        "image": id,
    });
    Ok(format!("verify-{inputs}"))
}

/// The report of an identical passing run, if one is kept.
fn cached_report(cache: &crate::fetch::cache::Cache, key: &str) -> Option<Report> {
    cache
        .read_json::<Report>(&cache.keyed("verify", key, ".json"))
        .filter(|r| r.ok)
}

/// Keep a passing report (best effort).
fn remember(cache: &crate::fetch::cache::Cache, key: &str, report: &Report) {
    let _ = cache.write_json(&cache.keyed("verify", key, ".json"), report);
}

async fn run_steps(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<Vec<Step>, VerifyError> {
    let timeout = Some(Duration::from_secs(target.command_timeout_s));
    if bundle
        .manifest
        .files
        .iter()
        .any(|f| f.kind == FileKind::Wheel)
    {
        check_python(c, bundle).await?;
    }
    let mut steps = vec![upload(c, bundle, target, reporter).await?];
    for step in prompt_steps(c, bundle, target, timeout, reporter).await? {
        let ok = step.ok;
        steps.push(step);
        if !ok {
            return Ok(steps);
        }
    }
    steps.extend(program_step(c, bundle, target, timeout, reporter).await?);
    steps.extend(check_steps(c, bundle, target, timeout, reporter).await?);
    steps.extend(import_steps(c, bundle, timeout, reporter).await?);
    Ok(steps)
}

/// Before anything: the image's Python must be the one the bundle's wheels
/// were resolved for (major.minor), as install.py will also insist.
async fn check_python(c: &impl Run, bundle: &Bundle) -> Result<(), VerifyError> {
    let t = &bundle.manifest.target;
    let expected: String = t.python.split('.').take(2).collect::<Vec<_>>().join(".");
    let out = c
        .exec(
            "python3 -c 'import sys; print(\"%s %d.%d\" % ((sys.implementation.name,) + sys.version_info[:2]))'",
            &ExecOptions::default(),
        )
        .await?;
    let found = out.stdout.trim().to_string();
    if out.code == 0 && found == format!("cpython {expected}") {
        return Ok(());
    }
    Err(VerifyError::WrongPython {
        target: t.name.clone(),
        expected,
        found: if out.code == 0 {
            found
        } else {
            "missing (no python3)".into()
        },
    })
}

/// Step 1. Upload, as a user does: the files land in the upload folder, owned
/// by the sandbox user.
async fn upload(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<Step, VerifyError> {
    let up = target.upload_dir.trim_end_matches('/').to_string();
    let started = Instant::now();
    let names: Vec<String> = bundle
        .uploads
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| !n.contains('/'))
        .collect();
    let _step = Progress::start(reporter, "uploading");
    let ids = c
        .run_ok("id -u; id -g", "id", &ExecOptions::default())
        .await?;
    let mut nums = ids
        .stdout
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    let owner = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    // The tar is written to disk and streamed: uploads may be gigabytes.
    let tar = upload_tar(&bundle.uploads, owner).map_err(|e| VerifyError::NotABundle {
        path: bundle.dir.clone(),
        message: e.to_string(),
    })?;
    c.copy_in_file(&up, tar.path()).await?;
    Ok(Step {
        name: "upload".into(),
        ok: true,
        seconds: started.elapsed().as_secs_f64(),
        command: None,
        output: if names.is_empty() {
            format!("{}/ into {up}", bundle.name)
        } else {
            format!("{} into {up}", names.join(", "))
        },
    })
}

/// A tar of the uploads in a temporary file (uploads may be gigabytes),
/// owned by `owner`, mode 0644, with their folders.
fn upload_tar(
    uploads: &[(String, PathBuf)],
    owner: (u64, u64),
) -> std::io::Result<tempfile::NamedTempFile> {
    let file = tempfile::NamedTempFile::new()?;
    let mut members = Vec::new();
    for (path, from) in uploads {
        members.push((path.as_str(), 0o644, std::fs::metadata(from)?.len()));
    }
    let out = crate::docker::write_tar(
        std::io::BufWriter::new(file.reopen()?),
        &members,
        owner,
        |i| std::fs::File::open(&uploads[i].1).map(std::io::BufReader::new),
    )?;
    std::io::Write::flush(&mut { out })?;
    Ok(file)
}

/// Steps 2-3. What PROMPT.txt tells the sandbox to run: unpack (for an archive),
/// then install.py (its checks run as steps of their own).
async fn prompt_steps(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    timeout: Option<Duration>,
    reporter: &dyn Reporter,
) -> Result<Vec<Step>, VerifyError> {
    let up = target.upload_dir.trim_end_matches('/').to_string();
    let Some(PromptCode {
        interpreter,
        unpack,
        install,
    }) = prompt_code(bundle.prompt.as_deref().unwrap_or(""))
    else {
        return Err(VerifyError::NotABundle {
            path: bundle.dir.clone(),
            message: "PROMPT.txt has no ```python or ```sh code block".into(),
        });
    };
    let python = |name: &str, code: &str| {
        let script = format!(
            "cd {up} && cat > /tmp/bundle-{name}.{ext} <<'BUNDLE_EOF'\n{code}\nBUNDLE_EOF\n{interpreter} /tmp/bundle-{name}.{ext}",
            up = sh_quote(&up),
            ext = if interpreter == "sh" { "sh" } else { "py" }
        );
        (
            format!(
                "PROMPT.txt code: {}",
                code.trim_end().lines().last().unwrap_or("").trim()
            ),
            script,
        )
    };
    let mut programs: Vec<(String, String, Option<String>)> = Vec::new();
    // A folder is uploaded unpacked: only an archive needs the unpack code.
    if bundle.delivery.archive.is_some() && !unpack.trim().is_empty() {
        let (shown, script) = python("unpack", &unpack);
        programs.push(("unpack".into(), script, Some(shown)));
    }
    let (shown, script) = python("install", &install);
    let installer = if interpreter == "sh" {
        "install.sh"
    } else {
        "install.py"
    };
    programs.push((installer.into(), script, Some(shown)));
    let mut steps = Vec::new();
    for (name, script, shown) in programs {
        let env = ["BUNDLE_INSTALL_NO_CHECK=1"];
        let step = run_step(c, &name, &script, shown, timeout, &env, reporter).await?;
        let ok = step.ok;
        steps.push(step);
        if !ok {
            break;
        }
    }
    Ok(steps)
}

/// Step 4. Every program PROMPT.txt names is there, at its full path, for
/// the user to run.
async fn program_step(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    timeout: Option<Duration>,
    reporter: &dyn Reporter,
) -> Result<Option<Step>, VerifyError> {
    let programs = bundle.manifest.programs();
    if programs.is_empty() {
        return Ok(None);
    }
    let home = format!(
        "{}/{}",
        target.upload_dir.trim_end_matches('/'),
        bundle.name
    );
    let paths: Vec<String> = programs
        .keys()
        .map(|p| sh_quote(&format!("{home}/bin/{p}")))
        .collect();
    let script = format!(
        "bad=0; for p in {}; do if [ -x \"$p\" ]; then echo \"$p\"; else echo \"$p: missing or not executable\"; bad=1; fi; done; exit $bad",
        paths.join(" ")
    );
    let step = run_step(c, "programs", &script, None, timeout, &[], reporter).await?;
    Ok(Some(step))
}

/// Step 5. The recipe's checks, each a step, run as the user runs them: the
/// sandbox's own PATH, and the bundle's programs by their full paths.
async fn check_steps(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    timeout: Option<Duration>,
    reporter: &dyn Reporter,
) -> Result<Vec<Step>, VerifyError> {
    let up = target.upload_dir.trim_end_matches('/').to_string();
    let home_dir = format!("{up}/{}", bundle.name);
    let mut steps = Vec::new();
    for check in &bundle.manifest.checks {
        let command = bundle.manifest.check_command(&check.run, &home_dir);
        let mut step = run_step(
            c,
            &format!("check: {}", check.run),
            &format!("cd {}; {command}", sh_quote(&home_dir)),
            Some(command.clone()),
            timeout,
            &[],
            reporter,
        )
        .await?;
        if let Some(expect) = &check.expect {
            if step.ok && !step.output.contains(expect.as_str()) {
                step.ok = false;
                step.output = format!("expected {expect:?} in the output:\n{}", step.output);
            }
        }
        steps.push(step);
    }
    Ok(steps)
}

/// Step 6. `import <module>` for each top-level wheel the bundle was asked for.
async fn import_steps(
    c: &impl Run,
    bundle: &Bundle,
    timeout: Option<Duration>,
    reporter: &dyn Reporter,
) -> Result<Vec<Step>, VerifyError> {
    let top: BTreeSet<String> = bundle
        .manifest
        .requirements
        .iter()
        .filter_map(|r| Requirement::<VerbatimUrl>::from_str(r).ok())
        .map(|r| r.name.to_string())
        .collect();
    let mut steps = Vec::new();
    for f in bundle
        .manifest
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Wheel)
    {
        let Some(package) = &f.package else { continue };
        let normalized = pep508_rs::PackageName::from_str(package)
            .map(|p| p.to_string())
            .unwrap_or_else(|_| package.clone());
        if !top.is_empty() && !top.contains(&normalized) {
            continue;
        }
        let modules = if f.modules.is_empty() {
            crate::stage::wheel::facts(&bundle.dir.join(&f.path)).modules
        } else {
            f.modules.clone()
        };
        let Some(module) = f.import_name(&modules).map(str::to_string) else {
            continue;
        };
        let code = format!("import {module}");
        let step = run_step(
            c,
            &format!("import {module}"),
            &format!("cd /tmp && python3 -c {}", sh_quote(&code)),
            Some(format!("python3 -c '{code}'")),
            timeout,
            &[],
            reporter,
        )
        .await?;
        steps.push(step);
    }
    Ok(steps)
}

async fn run_step(
    c: &impl Run,
    name: &str,
    script: &str,
    shown: Option<String>,
    timeout: Option<Duration>,
    env: &[&str],
    reporter: &dyn Reporter,
) -> Result<Step, VerifyError> {
    let progress = Progress::start(reporter, name);
    // One stream, in the order it was written.
    let script = format!("exec 2>&1\n{script}");
    let out = c
        .exec(
            &script,
            &ExecOptions {
                timeout,
                env: env.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        )
        .await?;
    drop(progress);
    let mut output = crate::docker::tail(&out.combined(), 60);
    if out.timed_out {
        output = format!(
            "timed out after {} s (the target's command_timeout_s)\n{output}",
            timeout.map(|t| t.as_secs()).unwrap_or(0)
        );
    } else if out.code != 0 {
        output = format!("exit code {}\n{output}", out.code);
    }
    Ok(Step {
        name: name.to_string(),
        ok: out.code == 0 && !out.timed_out,
        seconds: out.elapsed.as_secs_f64(),
        command: shown,
        output,
    })
}

/// The wheels of the preinstalled packages the bundle relies on: the
/// excluded pins resolved from scratch, then whatever else the target has
/// pinned to its version, until nothing changes.
async fn preinstalled_wheels(
    target: &Target,
    manifest: &Manifest,
    fetcher: &Arc<Fetcher>,
    options: &VerifyOptions,
) -> Result<Vec<crate::resolve::Resolved>, VerifyError> {
    let failed = |message: String| VerifyError::Preinstalled {
        target: target.name.clone(),
        message,
    };
    let mut pins: Vec<String> = manifest
        .excluded
        .iter()
        .map(|e| format!("{}=={}", e.package, e.version))
        .collect();
    let mut wheels = Vec::new();
    for _ in 0..4 {
        let reqs = pins
            .iter()
            .map(|p| Requirement::<VerbatimUrl>::from_str(p).map_err(|e| failed(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let resolution =
            crate::resolve::resolve_standalone(&options.index_url, fetcher.clone(), target, reqs)
                .await
                .map_err(failed)?;
        let mut more = Vec::new();
        for p in &resolution.packages {
            if let Some(v) = target.preinstalled.get(&p.name) {
                if *v != p.version && !pins.iter().any(|x| x.starts_with(&format!("{}==", p.name)))
                {
                    more.push(format!("{}=={v}", p.name));
                }
            }
        }
        wheels = resolution.packages;
        if more.is_empty() {
            break;
        }
        pins.extend(more);
    }
    Ok(wheels)
}

/// The sandbox image plus the preinstalled packages this bundle relies on
/// (those the resolution left out, and their own dependencies, at the
/// target's versions), installed from wheels fetched for the target.
async fn preinstalled_image(
    engine: &Engine,
    target: &Target,
    manifest: &Manifest,
    base: &str,
    fetcher: &Arc<Fetcher>,
    reporter: &dyn Reporter,
    options: &VerifyOptions,
) -> Result<String, VerifyError> {
    if manifest.excluded.is_empty() {
        return Ok(base.to_string());
    }
    let failed = |message: String| VerifyError::Preinstalled {
        target: target.name.clone(),
        message,
    };
    let wheels = preinstalled_wheels(target, manifest, fetcher, options).await?;
    let mut files = Vec::new();
    let mut hashes = Vec::new();
    for w in &wheels {
        let blob = fetcher
            .download(
                &w.wheel.url,
                w.wheel.sha256.as_ref(),
                w.wheel.size,
                &w.wheel.filename,
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        hashes.push(blob.sha256.to_string());
        let data = std::fs::read(&blob.path).map_err(|e| failed(e.to_string()))?;
        files.push((format!("wheels/{}", w.wheel.filename), 0o644, data));
    }
    hashes.sort();
    let key = crate::fetch::cache::sha256_hex(format!("{base}\n{}", hashes.join("\n")).as_bytes());
    let tag = format!("bundle-verify:{}", &key[..16]);
    if engine.image_id(&tag).await?.is_some() {
        return Ok(tag);
    }
    let what = format!(
        "installing {} preinstalled package(s) into the sandbox image",
        wheels.len()
    );
    let _step = Progress::start(reporter, &what);
    let spec = ContainerSpec::root(base, &target.platform, false, "verify-image");
    engine
        .with_container(&spec, async |c| {
            let tar = tar_of(&files).map_err(|e| failed(e.to_string()))?;
            c.run_ok("mkdir -p /tmp/bundle-pre", "mkdir", &ExecOptions::default())
                .await?;
            c.copy_in("/tmp/bundle-pre", tar).await?;
            c.run_ok(
                "python3 -m pip install --no-index --no-deps --disable-pip-version-check /tmp/bundle-pre/wheels/*.whl \
                 && rm -rf /tmp/bundle-pre",
                "installing the preinstalled packages",
                &ExecOptions::default(),
            )
            .await?;
            c.commit(&tag).await?;
            Ok::<(), VerifyError>(())
        })
        .await?;
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{Answer, FakeContainer};
    use crate::model::Check;

    /// A folder bundle with these checks and no files, as `bundle build`
    /// writes it.
    fn folder_bundle(checks: Vec<Check>) -> (tempfile::TempDir, Bundle) {
        let target = Target::load("ubuntu-20.04").unwrap();
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("demo");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/demo"), b"#!/bin/sh\necho demo 1.2\n").unwrap();
        let demo = crate::model::manifest::FileEntry::new(
            "bin/demo",
            FileKind::Binary,
            crate::model::Sha256::of(b"#!/bin/sh\necho demo 1.2\n"),
            25,
        );
        let manifest = Manifest {
            schema: 1,
            name: "demo".into(),
            created_by: "test".into(),
            target: target.summary(),
            requirements: Vec::new(),
            files: vec![demo],
            excluded: Vec::new(),
            replaced: Vec::new(),
            checks,
            apt: Vec::new(),
        };
        crate::assemble::write_support_files(&dir, &manifest).unwrap();
        let uploads = crate::assemble::write_uploads(
            &dir,
            "demo",
            crate::assemble::Format::Dir,
            d.path(),
            1 << 20,
            true,
        )
        .unwrap();
        crate::assemble::write_prompt(&dir, &manifest, &target, &uploads).unwrap();
        let bundle = read_bundle(&dir).unwrap();
        (d, bundle)
    }

    fn run(c: &FakeContainer, bundle: &Bundle) -> Vec<Step> {
        let mut target = Target::load("ubuntu-20.04").unwrap();
        target.command_timeout_s = 7;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(run_steps(c, bundle, &target, &crate::report::NoReporter))
            .unwrap()
    }

    fn check(run: &str, expect: Option<&str>) -> Check {
        Check {
            run: run.into(),
            expect: expect.map(str::to_string),
        }
    }

    #[test]
    fn steps_run_in_order_as_the_user_would() {
        let (_d, bundle) = folder_bundle(vec![check("demo --version", Some("demo 1"))]);
        let c = FakeContainer::new()
            .answer("id -u", vec![Answer::ok("1000\n1000\n")])
            .answer("demo --version", vec![Answer::ok("demo 1.2\n")]);
        let steps = run(&c, &bundle);
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        // A folder is uploaded unpacked: no unpack step.
        assert_eq!(
            names,
            ["upload", "install.py", "programs", "check: demo --version"]
        );
        assert!(steps.iter().all(|s| s.ok), "{steps:?}");
        assert_eq!(*c.copied_in.lock().unwrap(), ["/mnt/data"]);
        // The check runs the program by the full path PROMPT.txt names,
        // with the sandbox's own PATH (nothing added).
        assert_eq!(
            c.ran("cd /mnt/data/demo; /mnt/data/demo/bin/demo --version"),
            1
        );
        assert_eq!(c.ran("PATH="), 0);
        assert!(bundle
            .prompt
            .as_deref()
            .unwrap()
            .contains("- /mnt/data/demo/bin/demo\n"));
        // install.py is run as PROMPT.txt says, without its own checks.
        assert_eq!(c.ran("python3 /tmp/bundle-install.py"), 1);
    }

    #[test]
    fn another_python_in_the_image_is_refused_first() {
        let (_d, mut bundle) = folder_bundle(Vec::new());
        let mut wheel = crate::model::manifest::FileEntry::new(
            "wheels/app-1.0-py3-none-any.whl",
            FileKind::Wheel,
            crate::model::Sha256::of(b""),
            0,
        );
        wheel.package = Some("app".into());
        bundle.manifest.files.push(wheel);
        let c =
            FakeContainer::new().answer("sys.implementation", vec![Answer::ok("cpython 3.9\n")]);
        let mut target = Target::load("ubuntu-20.04").unwrap();
        target.command_timeout_s = 7;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt
            .block_on(run_steps(&c, &bundle, &target, &crate::report::NoReporter))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "this bundle was made for ubuntu-20.04 (CPython 3.8), but the sandbox image's Python is cpython 3.9"
        );
        assert!(
            c.copied_in.lock().unwrap().is_empty(),
            "nothing is uploaded"
        );
        let c =
            FakeContainer::new().answer("sys.implementation", vec![Answer::ok("cpython 3.8\n")]);
        assert!(rt
            .block_on(run_steps(&c, &bundle, &target, &crate::report::NoReporter))
            .is_ok());
    }

    #[test]
    fn a_failed_install_stops_before_the_checks() {
        let (_d, bundle) = folder_bundle(vec![check("demo --version", None)]);
        let c = FakeContainer::new()
            .answer("id -u", vec![Answer::ok("1000\n1000\n")])
            .answer(
                "bundle-install.py",
                vec![Answer::fail(1, "ERROR: pip failed")],
            );
        let steps = run(&c, &bundle);
        let last = steps.last().unwrap();
        assert_eq!(last.name, "install.py");
        assert!(!last.ok);
        assert!(
            last.output.starts_with("exit code 1\nERROR: pip failed"),
            "{}",
            last.output
        );
        assert_eq!(c.ran("demo --version"), 0, "checks must not run");
    }

    #[test]
    fn checks_fail_on_missing_output_and_on_the_time_limit() {
        let (_d, bundle) = folder_bundle(vec![
            check("demo --version", Some("demo 2")),
            check("sleep 99", None),
        ]);
        let c = FakeContainer::new()
            .answer("id -u", vec![Answer::ok("1000\n1000\n")])
            .answer("demo --version", vec![Answer::ok("demo 1.2\n")])
            .answer("sleep 99", vec![Answer::timeout()]);
        let steps = run(&c, &bundle);
        assert_eq!(steps[2].name, "programs");
        let version = &steps[3];
        assert!(!version.ok);
        assert!(
            version
                .output
                .starts_with("expected \"demo 2\" in the output:"),
            "{}",
            version.output
        );
        let slow = &steps[4];
        assert!(!slow.ok);
        assert!(
            slow.output
                .starts_with("timed out after 7 s (the target's command_timeout_s)"),
            "{}",
            slow.output
        );
        let report = Report {
            bundle: "demo".into(),
            target: "t".into(),
            image: "i".into(),
            user: "u".into(),
            upload_dir: "/mnt/data".into(),
            ok: false,
            steps,
            container: None,
            cached: false,
        };
        assert_eq!(
            report.error().unwrap().to_string(),
            "verify failed at step `check: demo --version` (2 of 5 steps failed)"
        );
    }

    #[test]
    fn uploads_json_cannot_name_files_outside_the_output_folder() {
        let (d, _bundle) = folder_bundle(Vec::new());
        let dir = d.path().join("demo");
        std::fs::write(d.path().join("secret"), b"not for the sandbox").unwrap();
        let listed = format!(
            r#"{{"uploads": [{{"path": "../secret", "size": 19, "sha256": "{}"}}], "archive": {{"path": "demo.zip", "size": 1, "sha256": "{}"}}, "max_file_bytes": 10}}"#,
            crate::model::Sha256::of(b"not for the sandbox"),
            crate::model::Sha256::of(b"x")
        );
        std::fs::write(dir.join("uploads.json"), listed).unwrap();
        let e = read_bundle(&dir).err().expect("refused");
        assert!(
            e.to_string()
                .contains("`../secret` is not a file name beside the folder"),
            "{e}"
        );
    }

    #[test]
    fn prompt_code_splits_unpack_from_install() {
        let prompt = "I uploaded x.zip.\n\n```python\nimport zipfile\nzipfile.ZipFile(\"/mnt/data/x.zip\").extractall(\"/mnt/data\")\nimport subprocess, sys\nsubprocess.run([sys.executable, \"/mnt/data/x/install.py\"], check=True)\n```\n";
        let code = prompt_code(prompt).unwrap();
        assert_eq!(code.interpreter, "python3");
        assert!(code.unpack.contains("extractall"));
        assert!(code.install.starts_with("import subprocess"));
        assert!(code.install.contains("install.py"));
        let prompt = "I uploaded x.tar.gz.\n\n```sh\nset -e\ncd /mnt/data\ntar -xzf x.tar.gz\nsh /mnt/data/x/install.sh\n```\n";
        let code = prompt_code(prompt).unwrap();
        assert_eq!(code.interpreter, "sh");
        assert_eq!(code.unpack, "set -e\ncd /mnt/data\ntar -xzf x.tar.gz\n");
        assert_eq!(code.install, "sh /mnt/data/x/install.sh\n");
    }

    #[test]
    fn archives_cannot_write_outside() {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("../evil", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, b"x").unwrap();
        let data = w.finish().unwrap().into_inner();
        let d = tempfile::tempdir().unwrap();
        let zip = d.path().join("b.zip");
        std::fs::write(&zip, data).unwrap();
        let e = unpack_archive(&zip, &d.path().join("in")).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        assert!(!d.path().join("evil").exists());
    }
}
