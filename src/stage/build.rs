//! `[[build]]` recipes: programs built from source inside an image of the
//! target (its sandbox image plus the recipe's `packages`), so that they
//! need no newer glibc than the target has. The source (an archive, or a
//! crate and its locked dependencies) is fetched and verified on the host;
//! the build container has no network; files go in and out through the
//! Docker API. The programs then go through what apt binaries go through:
//! the library closure against the sandbox, RUNPATH or wrappers, the checks.

use crate::error::Diagnose;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::recipe::{Build, Release};
use crate::config::target::Target;
use crate::docker::sandbox;
use crate::docker::{sh_quote, ContainerSpec, DockerError, Engine, ExecOptions, Run};
use crate::fetch::{Blob, Fetcher};
use crate::model::plan::{ArchiveKind, BuildSource, PlannedBuild};
use crate::report::{Reporter, Step};
use crate::stage::apt::{self, AptBuild, AptError};
use crate::stage::crates::{self, CrateError, Registry};
use crate::stage::release::{self, ReleaseError};

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

/// The host's Rust toolchain: its folder and `rustc -V`.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub sysroot: PathBuf,
    pub version: String,
    pub host: String,
}

/// `rustc` from `RUSTC` or PATH: its sysroot, which must hold cargo.
pub fn host_toolchain(name: &str) -> Result<Toolchain, BuildError> {
    let none = |why: String| BuildError::NoToolchain {
        name: name.to_string(),
        why,
    };
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&rustc)
            .args(args)
            .output()
            .map_err(|e| none(format!("cannot run {}: {e}", rustc.to_string_lossy())))?;
        if !out.status.success() {
            return Err(none(format!(
                "`rustc {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let verbose = run(&["-vV"])?;
    let sysroot = PathBuf::from(run(&["--print", "sysroot"])?);
    let version = verbose.lines().next().unwrap_or_default().to_string();
    let host = verbose
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_default()
        .to_string();
    if !sysroot.join("bin/cargo").is_file() {
        return Err(none(format!(
            "the toolchain at {} has no bin/cargo",
            sysroot.display()
        )));
    }
    Ok(Toolchain {
        sysroot,
        version,
        host,
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

/// The host toolchain, when it can build for the target.
fn rust_for(planned: &PlannedBuild, target: &Target) -> Result<Toolchain, BuildError> {
    let t = host_toolchain(&planned.name)?;
    if !t.host.starts_with(target.arch.as_str()) {
        return Err(BuildError::OtherArch {
            name: planned.name.clone(),
            host: t.host.clone(),
            target: target.name.clone(),
            arch: target.arch.as_str().into(),
        });
    }
    Ok(t)
}

/// The packages of the build image: the recipe's, and for crates a C
/// compiler and the C library's headers to link with.
fn build_packages(planned: &PlannedBuild) -> Vec<String> {
    let mut packages = planned.packages.clone();
    if matches!(planned.source, BuildSource::Crate { .. }) {
        packages.extend(["gcc".to_string(), "libc6-dev".to_string()]);
    }
    packages.sort();
    packages.dedup();
    packages
}

/// A build from scratch: fetch, prepare the images, build in a container
/// with no network, take the programs and their libraries.
async fn fresh(
    planned: &PlannedBuild,
    target: &Target,
    toolchain: Option<&Toolchain>,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
    root: &Path,
) -> Result<AptBuild, BuildError> {
    let inputs = fetch_inputs(planned, fetcher).await?;
    let engine = Engine::connect("[[build]] recipes need").await?;
    let step = Step::start(reporter, "sandbox image and its libraries");
    let sandbox_tag = sandbox::sandbox_image(&engine, target, reporter).await?;
    let system =
        sandbox::libraries(&engine, &sandbox_tag, &target.platform, fetcher.cache()).await?;
    drop(step);
    let mut image =
        sandbox::image_with(&engine, target, &build_packages(planned), reporter).await?;
    if let Some(t) = toolchain {
        let tmp = cache_tmp(fetcher)?;
        let sysroot = t.sysroot.clone();
        image = sandbox::image_with_rust(
            &engine,
            &image,
            &target.platform,
            &|| toolchain_tar(&sysroot, &tmp),
            RUST_DIR,
            &t.version,
            reporter,
        )
        .await?;
    }
    let spec = ContainerSpec::root(&image, &target.platform, false, "build");
    let (after, binaries, closure, link) = engine
        .with_container(&spec, async |c| {
            put_inputs(c, &inputs, fetcher).await?;
            run_script(c, planned, &inputs, reporter).await?;
            let binaries = locate(c, planned).await?;
            let closure = apt::library_closure(c, target, &binaries, &system).await?;
            let step = Step::start(reporter, "staging, RUNPATH and copy-out");
            let link =
                apt::stage_and_link(c, planned.link, &binaries, &closure, root, reporter).await?;
            drop(step);
            let after = apt::dpkg_list(
                &c.run_ok(apt::DPKG_QUERY, "dpkg-query", &ExecOptions::default())
                    .await?
                    .stdout,
            );
            let owners = apt::owners(c, &closure.libraries.values().collect::<Vec<_>>()).await?;
            Ok::<_, BuildError>(((after, owners), binaries, closure, link))
        })
        .await?;
    let (after, owners) = after;
    let version_of = |path: &str| {
        let pkg = owners.get(path).cloned();
        let version = pkg
            .as_ref()
            .and_then(|p| after.get(p))
            .map(|p| p.version.clone());
        if pkg.is_some() {
            (pkg, version)
        } else {
            (Some(planned.name.clone()), Some(planned.version.clone()))
        }
    };
    let files = apt::rows(root, &binaries, &closure, link, &version_of)?;
    Ok(AptBuild {
        installed: Vec::new(),
        files,
        system_libraries: system,
    })
}

/// What goes into the build container: the source archive, or every
/// `.crate` file (the crate's first), verified.
enum Inputs {
    Archive(Blob, ArchiveKind),
    Crates(Vec<(crates::Locked, Blob)>),
}

async fn fetch_inputs(planned: &PlannedBuild, fetcher: &Fetcher) -> Result<Inputs, BuildError> {
    match &planned.source {
        BuildSource::Archive {
            url,
            sha256,
            archive,
        } => {
            let label = url.rsplit('/').next().unwrap_or(url).to_string();
            let blob = fetcher
                .download(&fetcher.mirrored(url), Some(sha256), None, &label)
                .await?;
            // Refuse escaping or oversized members before the container sees them.
            crate::archive::list(*archive, &blob.path, crate::archive::Limits::from_env())
                .map_err(|source| BuildError::BadSource {
                    name: planned.name.clone(),
                    file: label,
                    source,
                })?;
            Ok(Inputs::Archive(blob, *archive))
        }
        BuildSource::Crate {
            name,
            sha256,
            index,
            ..
        } => {
            let registry = Registry::new(index, fetcher);
            let all = crates::fetch_all(&registry, name, &planned.version, sha256).await?;
            Ok(Inputs::Crates(all))
        }
    }
}

/// Copy the inputs into `/work/in` of the container, streamed from the
/// cache (each file checked again as it is read).
async fn put_inputs(c: &impl Run, inputs: &Inputs, fetcher: &Fetcher) -> Result<(), BuildError> {
    let mut files: Vec<(String, &Blob)> = Vec::new();
    let mut sums = String::new();
    match inputs {
        Inputs::Archive(blob, kind) => {
            let ext = match kind {
                ArchiveKind::Zip => "zip",
                ArchiveKind::TarXz => "tar.xz",
                _ => "tar.gz",
            };
            files.push((format!("in/source.{ext}"), blob));
        }
        Inputs::Crates(all) => {
            for (i, (l, blob)) in all.iter().enumerate() {
                let dir = format!("{}-{}", l.name, l.version);
                files.push((format!("in/{dir}.crate"), blob));
                if i > 0 {
                    sums.push_str(&format!("{dir} {}\n", l.sha256));
                }
            }
        }
    }
    let tmp = cache_tmp(fetcher)?;
    let tar = tempfile::NamedTempFile::new_in(&tmp).map_err(|source| DockerError::Local {
        path: tmp.clone(),
        source,
    })?;
    let mut members: Vec<(&str, u32, u64)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), 0o644, b.size))
        .collect();
    members.push(("in/SUMS", 0o644, sums.len() as u64));
    let blobs: Vec<&Blob> = files.iter().map(|(_, b)| *b).collect();
    // What is sent is what was verified: each blob is hashed again as it
    // goes into the tar, and a changed one fails the write.
    crate::docker::write_tar(tar.as_file(), &members, (0, 0), |i| {
        Ok(match blobs.get(i) {
            Some(b) => Box::new(crate::fetch::verified_reader(b)?) as Box<dyn Read>,
            None => Box::new(std::io::Cursor::new(sums.clone().into_bytes())),
        })
    })
    .map_err(|source| DockerError::Local {
        path: tar.path().to_path_buf(),
        source,
    })?;
    c.run_ok("mkdir -p /work", "making /work", &ExecOptions::default())
        .await?;
    c.copy_in_file("/work", tar.path()).await?;
    Ok(())
}

/// The shell that unpacks the inputs and builds, as root, in `/work`.
fn script_for(planned: &PlannedBuild, inputs: &Inputs) -> String {
    let head =
        format!("set -e; export PREFIX={PREFIX}; mkdir -p \"$PREFIX\" /work/src; cd /work/src\n");
    match inputs {
        Inputs::Archive(_, kind) => {
            let unpack = match kind {
                ArchiveKind::Zip => "unzip -q /work/in/source.zip",
                ArchiveKind::TarXz => "tar -xJf /work/in/source.tar.xz --no-same-owner",
                _ => "tar -xzf /work/in/source.tar.gz --no-same-owner",
            };
            format!(
                "{head}{unpack}\n\
                 set -- *; if [ $# -eq 1 ] && [ -d \"$1\" ]; then cd \"$1\"; fi\n\
                 sh -e -c {}\n",
                sh_quote(planned.script.as_deref().unwrap_or("true"))
            )
        }
        Inputs::Crates(all) => {
            let (main, _) = &all[0];
            let features = if planned.features.is_empty() {
                String::new()
            } else {
                format!(" --features {}", sh_quote(&planned.features.join(",")))
            };
            format!(
                "{head}export PATH={RUST_DIR}/bin:$PATH CARGO_HOME=/work/cargo-home\n\
                 mkdir -p /work/vendor \"$CARGO_HOME\"\n\
                 while read -r dir sum; do\n\
                   tar -xzf \"/work/in/$dir.crate\" -C /work/vendor --no-same-owner\n\
                   printf '{{\"files\":{{}},\"package\":\"%s\"}}' \"$sum\" > \"/work/vendor/$dir/.cargo-checksum.json\"\n\
                 done < /work/in/SUMS\n\
                 printf '[source.crates-io]\\nreplace-with = \"vendored\"\\n[source.vendored]\\ndirectory = \"/work/vendor\"\\n[net]\\noffline = true\\n' > \"$CARGO_HOME/config.toml\"\n\
                 tar -xzf /work/in/{dir}.crate --no-same-owner\n\
                 cd {dir}\n\
                 cargo install --locked --offline --path . --root \"$PREFIX\"{features}\n",
                dir = sh_quote(&format!("{}-{}", main.name, main.version)),
            )
        }
    }
}

/// Run the build; a failure shows its last lines.
async fn run_script(
    c: &impl Run,
    planned: &PlannedBuild,
    inputs: &Inputs,
    reporter: &dyn Reporter,
) -> Result<(), BuildError> {
    let _step = Step::start(
        reporter,
        &format!("building {} {}", planned.name, planned.version),
    );
    let out = c
        .exec(
            &script_for(planned, inputs),
            &ExecOptions {
                workdir: Some("/work".into()),
                ..Default::default()
            },
        )
        .await?;
    tracing::debug!("build {}: {}", planned.name, out.combined());
    if out.code == 0 {
        return Ok(());
    }
    let all = out.combined();
    let lines: Vec<&str> = all.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    Err(BuildError::ScriptFailed {
        name: planned.name.clone(),
        code: out.code,
        image: c.image().to_string(),
        tail,
    })
}

/// The environment variable that sets the limit on one output's size.
pub const OUTPUT_LIMIT_VAR: &str = "BUNDLE_MAX_BUILD_OUTPUT";

/// The largest file a build may ship (`BUNDLE_MAX_BUILD_OUTPUT`, 2 GiB,
/// as much as an archive may unpack to):
/// a 3 GiB sparse file made by a script is a clear error, not a copy.
fn output_limit() -> u64 {
    std::env::var(OUTPUT_LIMIT_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(2 << 30)
}

/// Each binary: `$PREFIX/bin/<name>`, else `$PREFIX/<path>`; a regular file
/// that is under $PREFIX once links are followed (a link to a file of the
/// build image, `/etc/shadow` say, is refused, as an archive member that
/// leaves its folder is), and within the output limit.
async fn locate(c: &impl Run, planned: &PlannedBuild) -> Result<apt::Binaries, BuildError> {
    let mut out = Vec::new();
    let limit = output_limit();
    for b in &planned.binaries {
        let mut tries = vec![format!("{PREFIX}/{b}")];
        if !b.contains('/') {
            tries.insert(0, format!("{PREFIX}/bin/{b}"));
        }
        let script =
            format!(
            "for p in {}; do if [ -f \"$p\" ]; then r=$(readlink -f \"$p\") && echo \"$r\" && stat -c %s \"$r\"; exit 0; fi; done; exit 1",
            tries.iter().map(|t| sh_quote(t)).collect::<Vec<_>>().join(" ")
        );
        let found = c.exec(&script, &ExecOptions::default()).await?;
        let mut lines = found.stdout.lines();
        let real = lines.next().unwrap_or("").trim().to_string();
        let size: u64 = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        if found.code == 0 && !real.is_empty() {
            if !real.starts_with(&format!("{PREFIX}/")) {
                return Err(BuildError::OutsidePrefix {
                    name: planned.name.clone(),
                    binary: b.clone(),
                    real,
                });
            }
            if size > limit {
                return Err(BuildError::OutputTooLarge {
                    name: planned.name.clone(),
                    binary: b.clone(),
                    size,
                    limit,
                });
            }
            let name = b.rsplit('/').next().unwrap_or(b).to_string();
            out.push((name, real));
            continue;
        }
        let listed = c
            .exec(
                &format!("cd {PREFIX} && find . -type f | sed 's|^\\./||' | sort | head -n 20"),
                &ExecOptions::default(),
            )
            .await?;
        return Err(BuildError::BinaryMissing {
            name: planned.name.clone(),
            binary: b.clone(),
            found: listed.stdout.lines().map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// This run's temporary folder in the cache.
fn cache_tmp(fetcher: &Fetcher) -> Result<PathBuf, DockerError> {
    fetcher
        .cache()
        .tmp_dir()
        .map_err(|source| DockerError::Local {
            path: fetcher.cache().root().to_path_buf(),
            source,
        })
}

/// A tar of the toolchain's `bin/cargo`, `bin/rustc` and `lib/` (symlinks
/// kept), written into `tmp`.
fn toolchain_tar(sysroot: &Path, tmp: &Path) -> std::io::Result<PathBuf> {
    let file = tempfile::NamedTempFile::new_in(tmp)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file.as_file()));
    b.follow_symlinks(false);
    for prog in ["cargo", "rustc"] {
        b.append_path_with_name(sysroot.join("bin").join(prog), format!("bin/{prog}"))?;
    }
    b.append_dir_all("lib", sysroot.join("lib"))?;
    b.into_inner()?;
    let (_, path) = file.keep().map_err(|e| e.error)?;
    Ok(path)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sha256;

    fn planned(source: BuildSource) -> PlannedBuild {
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

    fn blob() -> Blob {
        Blob {
            path: PathBuf::from("/nonexistent"),
            sha256: Sha256::of(b""),
            size: 0,
        }
    }

    #[test]
    fn an_output_that_leads_outside_prefix_or_is_too_large_is_refused() {
        use crate::docker::fake::{Answer, FakeContainer};
        let p = planned(BuildSource::Archive {
            url: "http://127.0.0.1:1/hello-1.0.tar.gz".into(),
            sha256: Sha256::of(b""),
            archive: ArchiveKind::TarGz,
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let located = |answer: &str| {
            let c = FakeContainer::new().answer("readlink -f", vec![Answer::ok(answer)]);
            rt.block_on(locate(&c, &p))
        };
        // `$PREFIX/bin/hello -> /etc/shadow`, or `../../../etc/passwd`.
        for real in ["/etc/shadow", "/opt/bundle-prefix-other/x", "/etc/passwd"] {
            let e = located(&format!("{real}\n1000\n")).unwrap_err();
            assert!(matches!(e, BuildError::OutsidePrefix { .. }), "{e}");
            assert_eq!(
                e.to_string(),
                format!("[[build]] `hello`: `hello` leads outside $PREFIX (/opt/bundle-prefix), to {real}")
            );
            assert_eq!(e.exit_code(), crate::error::BAD_INPUT);
        }
        // A 3 GiB (sparse) file.
        let e = located("/opt/bundle-prefix/bin/hello\n3221225472\n").unwrap_err();
        assert!(matches!(e, BuildError::OutputTooLarge { .. }), "{e}");
        assert!(e.hint().unwrap().contains(OUTPUT_LIMIT_VAR));
        let ok = located("/opt/bundle-prefix/bin/hello\n1000\n").unwrap();
        assert_eq!(
            ok,
            [(
                "hello".to_string(),
                "/opt/bundle-prefix/bin/hello".to_string()
            )]
        );
    }

    #[test]
    fn an_archive_is_unpacked_its_top_folder_entered_and_the_script_run_with_sh_e() {
        let p = planned(BuildSource::Archive {
            url: "http://127.0.0.1:1/hello-1.0.tar.gz".into(),
            sha256: Sha256::of(b""),
            archive: ArchiveKind::TarGz,
        });
        let s = script_for(&p, &Inputs::Archive(blob(), ArchiveKind::TarGz));
        assert!(s.contains("export PREFIX=/opt/bundle-prefix"), "{s}");
        assert!(s.contains("tar -xzf /work/in/source.tar.gz"), "{s}");
        assert!(s.contains("cd \"$1\""), "{s}");
        assert!(
            s.contains("sh -e -c 'make install PREFIX=\"$PREFIX\"'"),
            "{s}"
        );
        let zip = script_for(&p, &Inputs::Archive(blob(), ArchiveKind::Zip));
        assert!(zip.contains("unzip -q /work/in/source.zip"), "{zip}");
    }

    #[test]
    fn a_crate_is_built_offline_from_vendored_locked_dependencies() {
        let p = planned(BuildSource::Crate {
            name: "hello".into(),
            url: "http://127.0.0.1:1/dl/hello/1.0.0/download".into(),
            sha256: Sha256::of(b""),
            index: "http://127.0.0.1:1/".into(),
        });
        let locked = |name: &str| crates::Locked {
            name: name.into(),
            version: "1.0.0".into(),
            sha256: Sha256::of(b""),
        };
        let s = script_for(
            &p,
            &Inputs::Crates(vec![(locked("hello"), blob()), (locked("dep"), blob())]),
        );
        assert!(s.contains("replace-with = \"vendored\""), "{s}");
        assert!(s.contains("offline = true"), "{s}");
        assert!(
            s.contains(
                "cargo install --locked --offline --path . --root \"$PREFIX\" --features pcre2"
            ),
            "{s}"
        );
        assert!(s.contains("cd hello-1.0.0"), "{s}");
        assert_eq!(
            build_packages(&p),
            vec!["gcc", "libc6-dev", "libsqlite3-dev"],
            "crates link with the image's own C toolchain"
        );
    }

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
