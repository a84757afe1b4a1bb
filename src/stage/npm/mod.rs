//! npm packages into the bundle: each verified tarball unpacked into its
//! place in `node_modules/` (the archive layer's escape rules, npm's
//! `package/` prefix stripped), the runtime's program into `runtime/`,
//! `bin/<name>` launchers that run each program with the bundled runtime
//! by its full path, and a `package.json` with a `package-lock.json` (v3)
//! that `npm ci` accepts. Install scripts are never run: a package that
//! needs one to build a native addon is refused, saying so.

mod launcher;
mod lockfile;
pub mod runtime;

use std::path::{Path, PathBuf};

use crate::archive::{self, ArchiveError, ArchiveKind};
use crate::error::Diagnose;
use crate::fetch::Blob;
use crate::model::manifest::{FileEntry, FileKind};
use crate::model::npm::{LockedNpm, PlannedNpm};
use crate::model::Sha256;

pub use launcher::launcher;
pub use lockfile::{package_json, package_lock};

/// Why npm packages cannot be staged.
#[derive(Debug, thiserror::Error)]
pub enum NpmStageError {
    #[error("{package}: cannot unpack its tarball")]
    Unpack {
        package: String,
        #[source]
        source: ArchiveError,
    },
    #[error("{package} needs its install script to build a native addon ({why}); bundle never runs install scripts on this machine and does not build npm addons")]
    NativeAddon { package: String, why: String },
    #[error("{package}: its program `{program}` is {script}, which the package does not have")]
    MissingBin {
        package: String,
        program: String,
        script: String,
    },
    #[error("[npm] binaries names `{program}`, which no package at the top of node_modules/ has{}", if .available.is_empty() { String::new() } else { format!(" (they have: {})", .available.join(", ")) })]
    NoSuchProgram {
        program: String,
        available: Vec<String>,
    },
    #[error("runtime {package}: its tarball has no {program}")]
    MissingRuntime { package: String, program: String },
    #[error("writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for NpmStageError {
    fn exit_code(&self) -> i32 {
        match self {
            NpmStageError::NoSuchProgram { .. } => crate::error::BAD_INPUT,
            _ => crate::error::WORK_FAILED,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            NpmStageError::Unpack { .. } => Some(
                "the tarball is malformed or malicious; nothing of it was kept in the bundle".into(),
            ),
            NpmStageError::NoSuchProgram { .. } => Some(
                "name programs from the packages' `bin` entries, or leave `binaries` out to take every program of the packages asked for".into(),
            ),
            NpmStageError::NativeAddon { .. } => Some(
                "choose a package that ships prebuilt binaries for linux (many have an optional platform package), or a pure JavaScript alternative".into(),
            ),
            _ => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NpmStageError + '_ {
    move |source| NpmStageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The fetched files of an npm plan: the runtime's tarball, and one per
/// package of the tree, in its order.
pub struct NpmBlobs<'a> {
    pub runtime: Option<&'a Blob>,
    pub packages: &'a [Blob],
}

/// What staging wrote, and what the user should know.
pub struct Staged {
    pub entries: Vec<FileEntry>,
    pub warnings: Vec<String>,
}

/// The entry of a file written under `root`, hashed from disk.
fn entry(root: &Path, rel: &str, kind: FileKind) -> Result<FileEntry, NpmStageError> {
    FileEntry::of_written(root, rel, kind).map_err(io(&root.join(rel)))
}

/// Stage the plan's packages, runtime and launchers under `root`.
pub fn stage(
    planned: &PlannedNpm,
    blobs: &NpmBlobs,
    root: &Path,
    bundle: &str,
) -> Result<Staged, NpmStageError> {
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let limits = archive::Limits::from_env();
    if let Some(blob) = blobs.runtime {
        entries.extend(stage_runtime(planned, blob, root, limits)?);
    }
    let (unpacked, notes) = unpack_all(planned, blobs.packages, root, limits)?;
    entries.extend(unpacked);
    warnings.extend(notes);
    entries.extend(write_launchers(planned, root)?);
    for (rel, text) in [
        ("package.json", package_json(planned, bundle)),
        ("package-lock.json", package_lock(planned, bundle)),
    ] {
        let dest = root.join(rel);
        std::fs::write(&dest, text).map_err(io(&dest))?;
        entries.push(entry(root, rel, FileKind::File)?);
    }
    Ok(Staged { entries, warnings })
}

/// One package's tarball into its place: its files' entries, hashed as
/// written, and the warning about its install scripts.
fn unpack_one(p: &LockedNpm, blob: &Blob, root: &Path, limits: archive::Limits) -> Unpacked {
    let dir = root.join(&p.path);
    let files = archive::unpack_tar_stripped(ArchiveKind::TarGz, &blob.path, limits, &dir, 1)
        .map_err(|source| NpmStageError::Unpack {
            package: format!("{}@{}", p.name, p.version),
            source,
        })?;
    let warning = install_scripts(p, &dir, &files)?;
    let entries = files
        .into_iter()
        .map(|f| {
            let kind = if f.executable {
                FileKind::Binary
            } else {
                FileKind::File
            };
            let rel = format!("{}/{}", p.path, archive::slashed(&f.path));
            FileEntry::new(rel, kind, f.sha256, f.size)
                .from_package(&p.name, Some(p.version.clone()))
                .with_source(&p.resolved)
        })
        .collect();
    Ok((entries, warning))
}

/// What unpacking one package gave.
type Unpacked = Result<(Vec<FileEntry>, Option<String>), NpmStageError>;

/// Every package's tarball into its place, on every core: a level of the
/// tree at a time (a package before those nested in it), the results in
/// the tree's order.
fn unpack_all(
    planned: &PlannedNpm,
    blobs: &[Blob],
    root: &Path,
    limits: archive::Limits,
) -> Result<(Vec<FileEntry>, Vec<String>), NpmStageError> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let depth = |p: &LockedNpm| p.path.matches("node_modules/").count();
    let deepest = planned.tree.iter().map(depth).max().unwrap_or(0);
    let mut results: Vec<Option<Unpacked>> = (0..planned.tree.len()).map(|_| None).collect();
    for level in 1..=deepest {
        let todo: Vec<usize> = (0..planned.tree.len())
            .filter(|&i| depth(&planned.tree[i]) == level)
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..workers.min(todo.len()) {
                scope.spawn(|| loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = todo.get(k) else { break };
                    let r = unpack_one(&planned.tree[i], &blobs[i], root, limits);
                    let failed = r.is_err();
                    done.lock().expect("poisoned").push((i, r));
                    if failed {
                        // The others stop at their next package.
                        next.store(todo.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        for (i, r) in done.into_inner().expect("poisoned") {
            results[i] = Some(r);
        }
    }
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    // The first failure in the tree's order, as a sequential run would give.
    for r in results.into_iter().flatten() {
        let (e, w) = r?;
        entries.extend(e);
        warnings.extend(w);
    }
    Ok((entries, warnings))
}

/// The runtime's program, from its package's tarball into `runtime/`.
fn stage_runtime(
    planned: &PlannedNpm,
    blob: &Blob,
    root: &Path,
    limits: archive::Limits,
) -> Result<Vec<FileEntry>, NpmStageError> {
    let mut entries = Vec::new();
    if let (Some(rel), Some(program)) = (
        planned.runtime.bundle_path(),
        planned.runtime.program.as_deref(),
    ) {
        let package = planned.runtime.package.clone().unwrap_or_default();
        let dest = root.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let member = PathBuf::from("package").join(program);
        // Hashed as it is written: the manifest's hash is of these bytes.
        let mut written = None;
        archive::stream_files(
            ArchiveKind::TarGz,
            &blob.path,
            limits,
            &|p| p == member,
            &mut |_, r| {
                let file = std::fs::File::create(&dest)?;
                written = Some(Sha256::copy(r, std::io::BufWriter::new(file))?);
                Ok(())
            },
        )
        .map_err(|source| NpmStageError::Unpack {
            package: package.clone(),
            source,
        })?;
        let Some((sha256, size)) = written else {
            return Err(NpmStageError::MissingRuntime {
                package,
                program: program.to_string(),
            });
        };
        crate::fsutil::set_mode(&dest, 0o755).map_err(io(&dest))?;
        entries.push(
            FileEntry::new(rel, FileKind::Binary, sha256, size)
                .from_package(package, planned.runtime.version.clone())
                .with_source(planned.runtime.url.clone().unwrap_or_default()),
        );
    }
    Ok(entries)
}

/// `bin/<name>` for each program of the packages asked for.
fn write_launchers(planned: &PlannedNpm, root: &Path) -> Result<Vec<FileEntry>, NpmStageError> {
    let mut entries = Vec::new();
    let programs = planned.programs();
    if let Some(missing) = planned.binaries.iter().find(|b| !programs.contains_key(*b)) {
        return Err(NpmStageError::NoSuchProgram {
            program: missing.clone(),
            available: planned
                .tree
                .iter()
                .filter(|p| p.path == format!("node_modules/{}", p.name))
                .flat_map(|p| p.bin.keys().cloned())
                .collect(),
        });
    }
    for (name, (path, script)) in programs {
        let p = planned
            .tree
            .iter()
            .find(|p| p.path == path)
            .expect("programs come from the tree");
        let script_rel = archive::safe_member_path(script.trim_start_matches("./"))
            .ok()
            .map(|s| format!("{path}/{}", archive::slashed(&s)))
            .filter(|s| root.join(s).is_file())
            .ok_or_else(|| NpmStageError::MissingBin {
                package: format!("{}@{}", p.name, p.version),
                program: name.clone(),
                script: script.clone(),
            })?;
        let mut head = Vec::new();
        if let Ok(f) = std::fs::File::open(root.join(&script_rel)) {
            let _ = std::io::Read::read_to_end(&mut std::io::Read::take(f, 256), &mut head);
        }
        let text = launcher(&name, p, &script_rel, &head, &planned.runtime);
        let rel = format!("bin/{name}");
        let dest = root.join(&rel);
        std::fs::create_dir_all(root.join("bin")).map_err(io(root))?;
        std::fs::write(&dest, text).map_err(io(&dest))?;
        crate::fsutil::set_mode(&dest, 0o755).map_err(io(&dest))?;
        entries.push(
            entry(root, &rel, FileKind::Binary)?
                .from_package(&p.name, Some(p.version.clone()))
                .with_source(format!("launcher of {script_rel}")),
        );
    }
    Ok(entries)
}

/// Tools that build or download a native addon at install time.
const NATIVE_BUILDERS: &[&str] = &["node-gyp", "prebuild-install", "node-pre-gyp", "cmake-js"];

/// A package's install scripts, which are never run: refused when they
/// build a native addon the package does not ship, else a warning that
/// they were not run (None when it has none).
fn install_scripts(
    p: &LockedNpm,
    dir: &Path,
    files: &[archive::Unpacked],
) -> Result<Option<String>, NpmStageError> {
    let manifest = std::fs::read(dir.join("package.json")).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&manifest).unwrap_or_default();
    let scripts: Vec<(String, String)> = ["preinstall", "install", "postinstall"]
        .iter()
        .filter_map(|k| Some((k.to_string(), json["scripts"][k].as_str()?.to_string())))
        .collect();
    let gyp = files.iter().any(|f| f.path == Path::new("binding.gyp"));
    let prebuilt = files
        .iter()
        .any(|f| f.path.extension().is_some_and(|e| e == "node"));
    let label = format!("{}@{}", p.name, p.version);
    let builder = scripts
        .iter()
        .find(|(_, s)| NATIVE_BUILDERS.iter().any(|b| s.contains(b)));
    let implicit = gyp
        && !scripts
            .iter()
            .any(|(k, _)| k == "install" || k == "preinstall");
    if !prebuilt && (builder.is_some() || implicit) {
        let why = match builder {
            Some((k, s)) => format!("its {k} script is `{s}`"),
            None => "it has a binding.gyp, which npm builds with node-gyp".into(),
        };
        return Err(NpmStageError::NativeAddon {
            package: label,
            why,
        });
    }
    if scripts.is_empty() {
        return Ok(None);
    }
    let list: Vec<String> = scripts.iter().map(|(k, s)| format!("{k}: `{s}`")).collect();
    Ok(Some(format!(
        "{label}: its install scripts were not run ({}); bundle never runs them, and verify proves the programs start without them",
        list.join(", ")
    )))
}
