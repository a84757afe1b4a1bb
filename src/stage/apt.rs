//! `[apt]` recipes: install packages in a container of the target's sandbox
//! image, take the named binaries and the shared libraries they need that
//! the sandbox lacks, and make the binaries find those libraries by
//! themselves (RUNPATH `$ORIGIN/../lib`, or a wrapper script).

use crate::error::Diagnose;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::check;
use crate::config::recipe::Apt;
use crate::config::target::Target;
use crate::docker::sandbox::{self, APT_ENV};
use crate::docker::Run;
use crate::docker::{sh_quote, ContainerSpec, DockerError, Engine, ExecOptions};
use crate::model::manifest::{AptPackage, Link};
use crate::report::{Reporter, Step};

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("`{binary}` is not on PATH in {image} after installing {packages}")]
    BinaryNotFound {
        binary: String,
        image: String,
        packages: String,
        candidates: Vec<String>,
    },
    #[error("the distribution of {image} has no package {}", .packages.join(", "))]
    UnknownPackage {
        packages: Vec<String>,
        image: String,
    },
    #[error("{needed_by} needs {library}, which is not in {image}")]
    LibraryNotFound {
        library: String,
        needed_by: String,
        image: String,
    },
    #[error("the lock's {package} {version} is no longer in the distribution's package lists")]
    VersionGone { package: String, version: String },
    #[error("--offline: {what} for {} not in the cache", .packages.join(", "))]
    NotCached { what: String, packages: Vec<String> },
    #[error("{file} from the distribution's mirror is not the file its package lists name (sha256 {actual}, lists {expected})")]
    DebMismatch {
        file: String,
        actual: String,
        expected: String,
    },
    #[error("copying {path} out of the container: {message}")]
    CopyOut { path: String, message: String },
    #[error("writing {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for AptError {
    fn hint(&self) -> Option<String> {
        match self {
            AptError::Docker(e) => e.hint(),
            AptError::BinaryNotFound { candidates, .. } if !candidates.is_empty() => Some(format!(
                "the packages installed these programs: {}; list one of them in `binaries`",
                candidates.join(", ")
            )),
            AptError::BinaryNotFound { .. } => {
                Some("check `binaries` in the recipe: name programs the packages install".into())
            }
            AptError::LibraryNotFound { .. } => {
                Some("add the package that provides it to `packages` in the recipe".into())
            }
            AptError::VersionGone { .. } => Some(
                "the mirror dropped that version: run `bundle lock` again to pin what it has now".into(),
            ),
            AptError::NotCached { .. } => Some(
                "run the same build once with the network, which keeps the package lists and .deb files in the cache".into(),
            ),
            AptError::UnknownPackage { .. } => Some(
                "check the package names in the recipe (`apt-cache search` in the image finds them); names differ between distributions and releases".into(),
            ),
            _ => None,
        }
    }

    /// A package or program the recipe names that does not exist is bad
    /// input; the rest, failed work.
    fn exit_code(&self) -> i32 {
        match self {
            AptError::UnknownPackage { .. } | AptError::BinaryNotFound { .. } => {
                crate::error::BAD_INPUT
            }
            AptError::Docker(e) => e.exit_code(),
            _ => crate::error::WORK_FAILED,
        }
    }
}

/// A file the apt stage wrote into the bundle.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AptFile {
    /// `bin/<name>`, `lib/<soname>` or `libexec/<name>`.
    pub path: String,
    pub library: bool,
    /// The path it was copied from, in the image.
    pub from: String,
    pub package: Option<String>,
    pub version: Option<String>,
    pub link: Option<Link>,
}

/// What the apt stage produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AptBuild {
    /// Packages the install added to the image, with versions.
    pub installed: Vec<AptPackage>,
    pub files: Vec<AptFile>,
    /// Sonames the sandbox image already has (not bundled).
    pub system_libraries: BTreeSet<String>,
}

/// glibc's own libraries: the target always has them, and a copy from
/// another glibc would not work with the target's loader.
fn is_glibc(soname: &str) -> bool {
    const GLIBC: &[&str] = &[
        "libc.so",
        "libm.so",
        "libdl.so",
        "libpthread.so",
        "librt.so",
        "libresolv.so",
        "libutil.so",
        "libnsl.so",
        "libanl.so",
        "libmvec.so",
        "libthread_db.so",
        "libBrokenLocale.so",
        "libc_malloc_debug.so",
    ];
    soname.starts_with("ld-linux")
        || soname.starts_with("ld64.so")
        || soname.starts_with("libnss_")
        || GLIBC
            .iter()
            .any(|g| soname == *g || soname.starts_with(&format!("{g}.")))
}

pub(super) fn dpkg_list(text: &str) -> BTreeMap<String, AptPackage> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            let (package, version, architecture, status) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            status.ends_with(" installed").then(|| {
                (
                    package.to_string(),
                    AptPackage {
                        package: package.to_string(),
                        version: version.to_string(),
                        architecture: architecture.to_string(),
                        deb: None,
                        sha256: None,
                    },
                )
            })
        })
        .collect()
}

pub(super) const DPKG_QUERY: &str =
    "dpkg-query -W -f='${Package}\\t${Version}\\t${Architecture}\\t${Status}\\n'";

/// Install `apt.packages` in the target's sandbox image and write the
/// binaries and libraries into `root` (`bin/`, `lib/`, maybe `libexec/`).
pub async fn build(
    engine: &Engine,
    target: &Target,
    apt: &Apt,
    locked: &[crate::model::plan::LockedDeb],
    root: &Path,
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<AptBuild, AptError> {
    let cache = fetcher.cache();
    let step = Step::start(reporter, "sandbox image and its libraries");
    let sandbox_tag = sandbox::sandbox_image(engine, target, reporter).await?;
    let system_libraries =
        sandbox::libraries(engine, &sandbox_tag, &target.platform, cache).await?;
    drop(step);
    // The package lists and .deb files come from the cache, fetched into it
    // (in a container with the network) only when missing; the install
    // itself runs with no network, as every rebuild can.
    let lists = package_lists(engine, &sandbox_tag, target, apt, fetcher, reporter).await?;
    // The same inputs (image, lists, packages, lock, recipe) give the same
    // files: a rebuild takes them from the cache, checked, with no container.
    let key = result_key(engine, &sandbox_tag, &lists, apt, locked).await?;
    if let Some(done) = reuse(cache, "apt", &key, root) {
        tracing::info!("apt: reused the result of an identical earlier build");
        return Ok(done);
    }
    let spec = ContainerSpec::root(&sandbox_tag, &target.platform, false, "apt");
    let debs = debs_for(
        engine, &spec, target, apt, locked, &lists, fetcher, reporter,
    )
    .await?;
    // Installing a lock: every locked package at its version (patchelf aside).
    let install = if locked.is_empty() {
        apt.clone()
    } else {
        Apt {
            packages: debs
                .iter()
                .filter(|d| d.package != "patchelf")
                .map(|d| format!("{}={}", d.package, d.version))
                .collect(),
            ..apt.clone()
        }
    };
    let (installed, files) = engine
        .with_container(&spec, async |c| {
            restore_lists(c, &lists).await?;
            put_debs(c, &debs).await?;
            build_in(c, target, &install, root, &system_libraries, reporter).await
        })
        .await?;
    let installed = with_debs(installed, &debs);
    let done = AptBuild {
        installed,
        files,
        system_libraries,
    };
    remember(cache, "apt", &key, root, &done);
    Ok(done)
}

/// The .deb files to install, verified in the cache: a lock's exact files,
/// else those the lists name for the packages (and patchelf, for RUNPATH,
/// which comes the same way without being recorded).
#[allow(clippy::too_many_arguments)]
async fn debs_for(
    engine: &Engine,
    spec: &ContainerSpec,
    target: &Target,
    apt: &Apt,
    locked: &[crate::model::plan::LockedDeb],
    lists: &[u8],
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<Vec<Deb>, AptError> {
    let debs = if locked.is_empty() {
        listed_debs(engine, spec, apt, lists).await?
    } else {
        locked
            .iter()
            .map(|d| Deb {
                package: d.package.clone(),
                version: d.version.clone(),
                file: d.deb.clone(),
                sha256: d.sha256.clone(),
                path: None,
            })
            .collect()
    };
    cached_debs(engine, &spec.image, target, lists, debs, fetcher, reporter).await
}

/// The .deb files the lists name for the packages, and for patchelf (for
/// RUNPATH, which comes the same way without being recorded), from a
/// container with no network.
async fn listed_debs(
    engine: &Engine,
    spec: &ContainerSpec,
    apt: &Apt,
    lists: &[u8],
) -> Result<Vec<Deb>, AptError> {
    let mut fetched = apt.clone();
    if apt.link != Some(Link::Wrapper) {
        fetched.packages.push("patchelf".into());
    }
    engine
        .with_container(spec, async |c| {
            restore_lists(c, lists).await?;
            wanted_debs(c, &fetched).await
        })
        .await
}

/// The installed packages, each with the .deb file it came from.
fn with_debs(installed: Vec<AptPackage>, debs: &[Deb]) -> Vec<AptPackage> {
    installed
        .into_iter()
        .map(|mut p| {
            if let Some(d) = debs
                .iter()
                .find(|d| d.package == p.package && d.version == p.version)
            {
                p.deb = Some(d.file.clone());
                p.sha256 = Some(d.sha256.clone());
            }
            p
        })
        .collect()
}

/// Binaries taken from the image: (name in the recipe, real path).
pub(super) type Binaries = Vec<(String, String)>;

/// The libraries the binaries need that the sandbox lacks.
pub(super) struct Closure {
    /// soname → real path in the image.
    pub(super) libraries: BTreeMap<String, String>,
    /// Real paths of files with a dynamic section (which RUNPATH concerns).
    pub(super) dynamic: BTreeSet<String>,
}

/// The apt stage in one container: install and record, locate the
/// binaries, walk their library closure, stage and link, copy out, and
/// list the rows for the manifest.
async fn build_in(
    c: &impl Run,
    target: &Target,
    apt: &Apt,
    root: &Path,
    system: &BTreeSet<String>,
    reporter: &dyn Reporter,
) -> Result<(Vec<AptPackage>, Vec<AptFile>), AptError> {
    let (after, installed) = install_and_record(c, apt, reporter).await?;
    let step = Step::start(reporter, "binaries and library closure");
    let binaries = locate_binaries(c, apt, &target.image).await?;
    let closure = library_closure(c, target, &binaries, system).await?;
    drop(step);
    let sources: Vec<&String> = binaries
        .iter()
        .map(|(_, p)| p)
        .chain(closure.libraries.values())
        .collect();
    let owners = owners(c, &sources).await?;
    let step = Step::start(reporter, "staging, RUNPATH and copy-out");
    let link = stage_and_link(c, apt.link, &binaries, &closure, root, reporter).await?;
    drop(step);
    let version_of = |path: &str| {
        let pkg = owners.get(path).cloned();
        let version = pkg
            .as_ref()
            .and_then(|p| after.get(p))
            .map(|p| p.version.clone());
        (pkg, version)
    };
    let files = rows(root, &binaries, &closure, link, &version_of)?;
    Ok((installed, files))
}

/// `apt-get install` the packages; the packages the install added or
/// changed, from `dpkg-query` before and after (and the whole list after).
async fn install_and_record(
    c: &impl Run,
    apt: &Apt,
    reporter: &dyn Reporter,
) -> Result<(BTreeMap<String, AptPackage>, Vec<AptPackage>), AptError> {
    let root_opts = ExecOptions::default();
    let packages = quoted(&apt.packages);
    let before = dpkg_list(&c.run_ok(DPKG_QUERY, "dpkg-query", &root_opts).await?.stdout);
    let what = format!("apt-get install {}", apt.packages.join(" "));
    let step = Step::start(reporter, &what);
    // From the lists and .deb files put in place: no network, no update.
    let out = c
        .exec(
            &format!("set -e; {APT_ENV}; $APT {LISTS_OPTS} install -y --no-download {packages}"),
            &root_opts,
        )
        .await?;
    drop(step);
    apt_outcome(&out, c.image(), what)?;
    let after = dpkg_list(&c.run_ok(DPKG_QUERY, "dpkg-query", &root_opts).await?.stdout);
    let installed = after
        .iter()
        .filter(|(name, p)| before.get(*name).map(|b| &b.version) != Some(&p.version))
        .map(|(_, p)| p.clone())
        .collect();
    Ok((after, installed))
}

fn quoted(words: &[String]) -> String {
    words
        .iter()
        .map(|p| sh_quote(p))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each of the recipe's binaries, through PATH, symlinks and alternatives.
/// A missing one lists the programs the packages did install.
async fn locate_binaries(c: &impl Run, apt: &Apt, image: &str) -> Result<Binaries, AptError> {
    let root_opts = ExecOptions::default();
    let mut binaries = Vec::new();
    for b in &apt.binaries {
        let out = c
            .exec(
                &format!(
                    "p=$(command -v {b}) && case \"$p\" in /*) readlink -f \"$p\";; *) exit 1;; esac",
                    b = sh_quote(b)
                ),
                &root_opts,
            )
            .await?;
        let real = out.stdout.trim().to_string();
        if out.code == 0 && !real.is_empty() {
            binaries.push((b.clone(), real));
            continue;
        }
        let listed = c
            .exec(
                &format!(
                    "dpkg -L {} 2>/dev/null | grep -E '/s?bin/[^/]+$' | sort -u",
                    quoted(&apt.packages)
                ),
                &root_opts,
            )
            .await?;
        return Err(AptError::BinaryNotFound {
            binary: b.clone(),
            image: image.to_string(),
            packages: apt.packages.join(", "),
            candidates: listed
                .stdout
                .lines()
                .filter_map(|l| l.rsplit('/').next())
                .map(str::to_string)
                .collect(),
        });
    }
    Ok(binaries)
}

/// DT_NEEDED, recursively, each name resolved inside the container
/// (RUNPATH, then `ldconfig -p`, then the default folders); what the
/// sandbox has and glibc itself stay out.
pub(super) async fn library_closure(
    c: &impl Run,
    target: &Target,
    binaries: &Binaries,
    system: &BTreeSet<String>,
) -> Result<Closure, AptError> {
    let ldconfig = c
        .run_ok("ldconfig -p", "ldconfig -p", &ExecOptions::default())
        .await?;
    let cache_map: BTreeMap<String, String> = sandbox::parse_ldconfig(&ldconfig.stdout)
        .into_iter()
        .rev()
        .collect();
    let mut closure = Closure {
        libraries: BTreeMap::new(),
        dynamic: BTreeSet::new(),
    };
    let mut queue: VecDeque<(String, String)> = binaries
        .iter()
        .map(|(name, real)| (format!("bin/{name}"), real.clone()))
        .collect();
    while let Some((label, path)) = queue.pop_front() {
        let data = c.read_file(&path).await?;
        let Some(info) = check::read_elf(&label, &data) else {
            continue; // a script: copied as it is
        };
        if info.interpreter.is_some() || info.soname.is_some() {
            closure.dynamic.insert(path.clone());
        }
        let origin = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
        for needed in &info.needed {
            if is_glibc(needed) || system.contains(needed) || closure.libraries.contains_key(needed)
            {
                continue;
            }
            let dirs = search_dirs(target, &info.runpath, origin, cache_map.get(needed));
            let real =
                find_library(c, needed, &dirs)
                    .await?
                    .ok_or_else(|| AptError::LibraryNotFound {
                        library: needed.clone(),
                        needed_by: label.clone(),
                        image: target.image.clone(),
                    })?;
            closure.libraries.insert(needed.clone(), real.clone());
            queue.push_back((format!("lib/{needed}"), real));
        }
    }
    Ok(closure)
}

/// Where the loader would look for a library: the file's RUNPATH (with
/// `$ORIGIN`), the folder `ldconfig -p` names, then the default folders.
fn search_dirs(
    target: &Target,
    runpath: &[String],
    origin: &str,
    cached: Option<&String>,
) -> Vec<String> {
    let triple = match target.arch {
        crate::config::target::Arch::X86_64 => "x86_64-linux-gnu",
        crate::config::target::Arch::Aarch64 => "aarch64-linux-gnu",
    };
    let mut dirs: Vec<String> = runpath
        .iter()
        .map(|r| r.replace("$ORIGIN", origin).replace("${ORIGIN}", origin))
        .collect();
    if let Some(p) = cached {
        dirs.push(
            p.rsplit_once('/')
                .map(|(d, _)| d)
                .unwrap_or("/")
                .to_string(),
        );
    }
    for d in ["/lib", "/usr/lib"] {
        dirs.push(format!("{d}/{triple}"));
        dirs.push(d.to_string());
    }
    dirs
}

/// The real path of library `name` in the first of `dirs` that has it.
async fn find_library(
    c: &impl Run,
    name: &str,
    dirs: &[String],
) -> Result<Option<String>, AptError> {
    let script = format!(
        "for d in {}; do if [ -e \"$d/{n}\" ]; then readlink -f \"$d/{n}\"; exit 0; fi; done; exit 1",
        dirs.iter().map(|d| sh_quote(d)).collect::<Vec<_>>().join(" "),
        n = name.replace(['"', '$', '`', '\\'], "")
    );
    let out = c.exec(&script, &ExecOptions::default()).await?;
    let real = out.stdout.trim().to_string();
    Ok((out.code == 0 && !real.is_empty()).then_some(real))
}

/// Copy the files into a folder of the container, set RUNPATH with
/// patchelf (or fall back to wrappers), and copy them out into `root`.
pub(super) async fn stage_and_link(
    c: &impl Run,
    link: Option<Link>,
    binaries: &Binaries,
    closure: &Closure,
    root: &Path,
    reporter: &dyn Reporter,
) -> Result<Option<Link>, AptError> {
    let root_opts = ExecOptions::default();
    let mut stage = String::from(
        "set -e; rm -rf /tmp/bundle-out; mkdir -p /tmp/bundle-out/bin /tmp/bundle-out/lib; cd /tmp/bundle-out\n",
    );
    for (name, real) in binaries {
        stage.push_str(&format!(
            "cp {} bin/{n}; chmod 755 bin/{n}\n",
            sh_quote(real),
            n = sh_quote(name)
        ));
    }
    for (soname, real) in &closure.libraries {
        stage.push_str(&format!(
            "cp {} lib/{n}; chmod 644 lib/{n}\n",
            sh_quote(real),
            n = sh_quote(soname)
        ));
    }
    c.run_ok(&stage, "staging the files", &root_opts).await?;
    let link = if closure.libraries.is_empty() {
        None
    } else if link == Some(Link::Wrapper) {
        Some(Link::Wrapper)
    } else {
        let out = c.exec(&patch_script(binaries, closure), &root_opts).await?;
        if out.code == 0 {
            tracing::debug!("patchelf: {}", out.combined());
            Some(Link::Runpath)
        } else {
            reporter.warn(&format!(
                "cannot set RUNPATH with patchelf ({}); using wrapper scripts instead",
                out.combined().lines().last().unwrap_or("")
            ));
            // Start again from unpatched copies.
            c.run_ok(&stage, "staging the files", &root_opts).await?;
            Some(Link::Wrapper)
        }
    };
    let members = c.copy_out_members("/tmp/bundle-out").await?;
    let mut expected: BTreeMap<String, u32> = BTreeMap::new();
    for (name, _) in binaries {
        expected.insert(format!("bin/{name}"), 0o755);
    }
    for soname in closure.libraries.keys() {
        expected.insert(format!("lib/{soname}"), 0o644);
    }
    unpack(members, root, &expected)?;
    Ok(link)
}

/// patchelf commands: `$ORIGIN/../lib` on binaries, `$ORIGIN` on libraries.
fn patch_script(binaries: &Binaries, closure: &Closure) -> String {
    let mut patch = format!(
        "set -e; {APT_ENV}; command -v patchelf >/dev/null || $APT {LISTS_OPTS} install -y --no-download patchelf >/dev/null; cd /tmp/bundle-out\n"
    );
    for (name, real) in binaries {
        if closure.dynamic.contains(real) {
            patch.push_str(&format!(
                "patchelf --set-rpath '$ORIGIN/../lib' bin/{}\n",
                sh_quote(name)
            ));
        }
    }
    for (soname, real) in &closure.libraries {
        if closure.dynamic.contains(real) {
            patch.push_str(&format!(
                "patchelf --set-rpath '$ORIGIN' lib/{}\n",
                sh_quote(soname)
            ));
        }
    }
    patch
}

/// The package and version a path in the image belongs to.
pub(super) type VersionOf<'a> = dyn Fn(&str) -> (Option<String>, Option<String>) + 'a;

/// The manifest rows of what was staged (writing wrappers where needed).
pub(super) fn rows(
    root: &Path,
    binaries: &Binaries,
    closure: &Closure,
    link: Option<Link>,
    version_of: &VersionOf,
) -> Result<Vec<AptFile>, AptError> {
    let row = |path: String, library: bool, real: &String, link: Option<Link>| {
        let (package, version) = version_of(real);
        AptFile {
            path,
            library,
            from: real.clone(),
            package,
            version,
            link,
        }
    };
    let mut files = Vec::new();
    for (name, real) in binaries {
        let dynamic = closure.dynamic.contains(real);
        let mut path = format!("bin/{name}");
        if link == Some(Link::Wrapper) && dynamic {
            path = wrap(root, name)?;
            files.push(row(format!("libexec/{name}"), false, real, None));
        }
        files.push(row(path, false, real, if dynamic { link } else { None }));
    }
    for (soname, real) in &closure.libraries {
        files.push(row(format!("lib/{soname}"), true, real, None));
    }
    Ok(files)
}

/// The package owning each path (`dpkg -S`), trying the path and, for
/// merged-/usr systems, its other spelling.
pub(super) async fn owners(
    c: &impl Run,
    paths: &[&String],
) -> Result<BTreeMap<String, String>, AptError> {
    let mut script = String::new();
    for p in paths {
        let alt = p
            .strip_prefix("/usr")
            .map(str::to_string)
            .unwrap_or_else(|| format!("/usr{p}"));
        script.push_str(&format!(
            "o=$(dpkg -S {q} 2>/dev/null || dpkg -S {a} 2>/dev/null || true); printf '%s\\t%s\\n' {q} \"$(echo \"$o\" | head -n1 | cut -d: -f1)\"\n",
            q = sh_quote(p),
            a = sh_quote(&alt)
        ));
    }
    let out = c
        .run_ok(&script, "dpkg -S", &ExecOptions::default())
        .await?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, o)| !o.is_empty())
        .map(|(p, o)| (p.to_string(), o.to_string()))
        .collect())
}

/// Write the copied-out folder's members: exactly the expected regular files.
fn unpack(
    members: crate::docker::Members,
    root: &Path,
    expected: &BTreeMap<String, u32>,
) -> Result<(), AptError> {
    let bad = |message: String| AptError::CopyOut {
        path: "/tmp/bundle-out".into(),
        message,
    };
    let mut seen = BTreeSet::new();
    for (name, data) in members {
        let Some(rel) = name.strip_prefix("bundle-out/") else {
            continue;
        };
        let Some(mode) = expected.get(rel) else {
            continue;
        };
        let Some(data) = data else {
            return Err(bad(format!("{rel} is not a regular file")));
        };
        let dest = root.join(rel);
        let io = |source| AptError::Io {
            path: dest.clone(),
            source,
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&dest, &data).map_err(io)?;
        crate::fsutil::set_mode(&dest, *mode).map_err(io)?;
        seen.insert(rel.to_string());
    }
    if let Some(missing) = expected.keys().find(|k| !seen.contains(*k)) {
        return Err(bad(format!("{missing} is missing from the copy")));
    }
    Ok(())
}

/// Move `bin/<name>` to `libexec/<name>` and put a wrapper script in its
/// place that points the loader at `lib/`. Returns the wrapper's path.
fn wrap(root: &Path, name: &str) -> Result<String, AptError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AptError::Io { path, source }
    };
    let libexec = root.join("libexec");
    std::fs::create_dir_all(&libexec).map_err(io(&libexec))?;
    let real = libexec.join(name);
    let bin = root.join("bin").join(name);
    std::fs::rename(&bin, &real).map_err(io(&real))?;
    let script = format!(
        "#!/bin/sh\n# Written by bundle: run libexec/{name} with the bundle's lib/.\n\
         here=$(dirname \"$(readlink -f \"$0\")\")\n\
         LD_LIBRARY_PATH=\"$here/../lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\" exec \"$here/../libexec/{name}\" \"$@\"\n"
    );
    std::fs::write(&bin, script).map_err(io(&bin))?;
    crate::fsutil::set_mode(&bin, 0o755).map_err(io(&bin))?;
    Ok(format!("bin/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{Answer, FakeContainer};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn recipe(link: Option<Link>) -> Apt {
        Apt {
            packages: vec!["lua5.3".into()],
            binaries: vec!["lua5.3".into()],
            link,
            check: Vec::new(),
        }
    }

    const STATUS: &str = "install ok installed";

    #[test]
    fn the_install_is_recorded_as_what_changed() {
        let before = format!("libc6\t2.31-13\tamd64\t{STATUS}\n");
        let after = format!(
            "libc6\t2.31-13\tamd64\t{STATUS}\nlua5.3\t5.3.3-1.1\tamd64\t{STATUS}\nliblua5.3-0\t5.3.3-1.1\tamd64\t{STATUS}\n"
        );
        let c = FakeContainer::new()
            .answer("dpkg-query", vec![Answer::ok(&before), Answer::ok(&after)]);
        let (_, installed) = block_on(install_and_record(
            &c,
            &recipe(None),
            &crate::report::NoReporter,
        ))
        .unwrap();
        let names: Vec<&str> = installed.iter().map(|p| p.package.as_str()).collect();
        assert_eq!(names, ["liblua5.3-0", "lua5.3"]);
        // From the lists and .deb files put in place: nothing is fetched.
        assert_eq!(c.ran("install -y --no-download lua5.3"), 1);
        assert_eq!(c.ran("update"), 0);
    }

    #[test]
    fn binaries_are_found_through_path_or_listed_when_missing() {
        let c =
            FakeContainer::new().answer("command -v lua5.3", vec![Answer::ok("/usr/bin/lua5.3\n")]);
        let found = block_on(locate_binaries(&c, &recipe(None), "img")).unwrap();
        assert_eq!(
            found,
            [("lua5.3".to_string(), "/usr/bin/lua5.3".to_string())]
        );

        let c = FakeContainer::new()
            .answer("command -v", vec![Answer::fail(1, "")])
            .answer(
                "dpkg -L",
                vec![Answer::ok("/usr/bin/lua5.3\n/usr/bin/luac5.3\n")],
            );
        let e = block_on(locate_binaries(&c, &recipe(None), "img")).unwrap_err();
        match e {
            AptError::BinaryNotFound { candidates, .. } => {
                assert_eq!(candidates, ["lua5.3", "luac5.3"])
            }
            other => panic!("{other}"),
        }
    }

    fn closure() -> (Binaries, Closure) {
        let binaries = vec![("lua5.3".to_string(), "/usr/bin/lua5.3".to_string())];
        let closure = Closure {
            libraries: BTreeMap::from([(
                "libreadline.so.8".to_string(),
                "/lib/x86_64-linux-gnu/libreadline.so.8.1".to_string(),
            )]),
            dynamic: BTreeSet::from([
                "/usr/bin/lua5.3".to_string(),
                "/lib/x86_64-linux-gnu/libreadline.so.8.1".to_string(),
            ]),
        };
        (binaries, closure)
    }

    fn staged() -> FakeContainer {
        FakeContainer::new()
            .file("/tmp/bundle-out/bin/lua5.3", b"\x7fELF lua")
            .file("/tmp/bundle-out/lib/libreadline.so.8", b"\x7fELF readline")
    }

    /// `stage_and_link` for lua5.3 and libreadline, with `link` from the recipe.
    fn stage(c: &FakeContainer, link: Option<Link>, root: &Path) -> Option<Link> {
        let (binaries, closure) = closure();
        block_on(stage_and_link(
            c,
            recipe(link).link,
            &binaries,
            &closure,
            root,
            &crate::report::NoReporter,
        ))
        .unwrap()
    }

    #[test]
    fn runpath_is_set_and_a_failing_patchelf_falls_back_to_wrappers() {
        let (binaries, closure) = closure();
        let root = tempfile::tempdir().unwrap();
        let c = staged();
        let link = stage(&c, None, root.path());
        assert_eq!(link, Some(Link::Runpath));
        assert_eq!(c.ran("patchelf --set-rpath '$ORIGIN/../lib' bin/lua5.3"), 1);
        assert_eq!(
            std::fs::read(root.path().join("bin/lua5.3")).unwrap(),
            b"\x7fELF lua"
        );

        let c = staged().answer(
            "patchelf",
            vec![Answer::fail(1, "patchelf: cannot find section")],
        );
        let root = tempfile::tempdir().unwrap();
        let link = stage(&c, None, root.path());
        assert_eq!(link, Some(Link::Wrapper));
        assert_eq!(
            c.ran("mkdir -p /tmp/bundle-out/bin"),
            2,
            "staged again, unpatched"
        );
        let version_of = |_: &str| (Some("lua5.3".to_string()), Some("5.3.3".to_string()));
        let files = rows(root.path(), &binaries, &closure, link, &version_of).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["libexec/lua5.3", "bin/lua5.3", "lib/libreadline.so.8"]
        );
        let wrapper = std::fs::read_to_string(root.path().join("bin/lua5.3")).unwrap();
        assert!(wrapper.starts_with("#!/bin/sh"), "{wrapper}");

        // The recipe can ask for wrappers: patchelf is never run.
        let c = staged();
        let root = tempfile::tempdir().unwrap();
        let link = stage(&c, Some(Link::Wrapper), root.path());
        assert_eq!(link, Some(Link::Wrapper));
        assert_eq!(c.ran("patchelf"), 0);
    }

    #[test]
    fn glibc_libraries_are_never_bundled() {
        for l in [
            "libc.so.6",
            "libm.so.6",
            "libdl.so.2",
            "libpthread.so.0",
            "librt.so.1",
            "ld-linux-x86-64.so.2",
            "ld-linux-aarch64.so.1",
            "libnss_files.so.2",
        ] {
            assert!(is_glibc(l), "{l}");
        }
        for l in [
            "libreadline.so.8",
            "libcrypto.so.1.1",
            "libmagic.so.1",
            "libcurl.so.4",
        ] {
            assert!(!is_glibc(l), "{l}");
        }
    }

    #[test]
    fn dpkg_query_lines() {
        let text = "lua5.3\t5.3.3-1.1+deb11u1\tamd64\tinstall ok installed\n\
                    gone\t1\tamd64\tdeinstall ok config-files\n";
        let m = dpkg_list(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m["lua5.3"].version, "5.3.3-1.1+deb11u1");
    }
}

/// apt keeps its package lists gzipped (smaller to cache).
const LISTS_OPTS: &str = "-o Acquire::GzipIndexes=true -o Acquire::CompressionTypes::Order::=gz";

/// How long cached package lists are used before `apt-get update` runs
/// again (`--refresh` runs it at once; `--offline` uses any age).
const LISTS_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A `.deb` the install needs: from the package lists, then the cache.
#[derive(Debug, Clone)]
struct Deb {
    package: String,
    version: String,
    /// Its file name, `name_version_arch.deb`.
    file: String,
    sha256: crate::model::Sha256,
    /// The verified file in the cache (once there).
    path: Option<std::path::PathBuf>,
}

/// The sandbox image's package lists (a tar of /var/lib/apt/lists), from
/// the cache when fresh, else from `apt-get update` in a container with the
/// network.
async fn package_lists(
    engine: &Engine,
    image: &str,
    target: &Target,
    apt: &Apt,
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<Vec<u8>, AptError> {
    let cache = fetcher.cache();
    let id = engine
        .image_id(image)
        .await?
        .unwrap_or_else(|| image.to_string());
    let path = cache.keyed("apt", &format!("lists-v1-{id}"), ".tar");
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    let usable = fetcher.offline() || (!fetcher.refresh() && age.is_some_and(|a| a < LISTS_TTL));
    if usable {
        if let Some(tar) = cache.read_checked(&path) {
            return Ok(tar);
        }
    }
    if fetcher.offline() {
        return Err(AptError::NotCached {
            what: "the package lists".into(),
            packages: apt.packages.clone(),
        });
    }
    let _step = Step::start(reporter, "apt-get update");
    let spec = ContainerSpec::root(image, &target.platform, true, "apt-update");
    let tar = engine
        .with_container(&spec, async |c| {
            c.run_ok(
                &format!(
                    "set -e; {APT_ENV}; rm -rf /var/lib/apt/lists/*; $APT {LISTS_OPTS} update"
                ),
                "apt-get update",
                &ExecOptions::default(),
            )
            .await?;
            let members = c.copy_out_members("/var/lib/apt/lists").await?;
            lists_tar(&members).map_err(|e| AptError::CopyOut {
                path: "/var/lib/apt/lists".into(),
                message: e.to_string(),
            })
        })
        .await?;
    cache
        .write_checked(&path, &tar)
        .map_err(|source| AptError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(tar)
}

/// A tar of the lists' files (copied out as `lists/...`), to unpack into
/// /var/lib/apt/lists.
fn lists_tar(members: &crate::docker::Members) -> std::io::Result<Vec<u8>> {
    let files: Vec<(String, u32, Vec<u8>)> = members
        .iter()
        .filter_map(|(name, data)| {
            let rel = name.split_once('/').map(|(_, r)| r)?;
            // Only the lists themselves: no lock file, no partial downloads.
            let keep = !rel.is_empty() && !rel.contains('/') && rel != "lock";
            data.as_ref()
                .filter(|_| keep)
                .map(|d| (rel.to_string(), 0o644, d.clone()))
        })
        .collect();
    crate::docker::tar_of(&files)
}

async fn restore_lists(c: &impl Run, lists: &[u8]) -> Result<(), AptError> {
    c.copy_in("/var/lib/apt/lists", lists.to_vec()).await?;
    Ok(())
}

/// The .deb files `apt-get install` would fetch for the recipe's packages,
/// with the sha256 the lists give (`--print-uris`, no network needed).
async fn wanted_debs(c: &impl Run, apt: &Apt) -> Result<Vec<Deb>, AptError> {
    let out = c
        .exec(
            &format!(
                "{APT_ENV}; $APT {LISTS_OPTS} install -y -qq --print-uris {}",
                quoted(&apt.packages)
            ),
            &ExecOptions::default(),
        )
        .await?;
    apt_outcome(
        &out,
        c.image(),
        format!("apt-get install --print-uris {}", apt.packages.join(" ")),
    )?;
    let mut debs = parse_print_uris(&out.combined());
    if debs.is_empty() {
        return Ok(debs);
    }
    // --print-uris may name only an MD5 sum: the lists' SHA256 of each file.
    let specs: Vec<String> = debs
        .iter()
        .map(|d| format!("{}={}", d.package, d.version))
        .collect();
    let shown = c
        .run_ok(
            &format!(
                "{APT_ENV}; apt-cache {LISTS_OPTS} show --no-all-versions {}",
                quoted(&specs)
            ),
            "apt-cache show",
            &ExecOptions::default(),
        )
        .await?;
    let sums = sha256_of_stanzas(&shown.stdout);
    for d in &mut debs {
        d.sha256 = sums
            .get(&(d.package.clone(), d.version.clone()))
            .cloned()
            .ok_or_else(|| AptError::CopyOut {
                path: d.file.clone(),
                message: "the package lists give no SHA256 for it".into(),
            })?;
    }
    Ok(debs)
}

/// (Package, Version) → SHA256 of `apt-cache show` stanzas.
fn sha256_of_stanzas(text: &str) -> BTreeMap<(String, String), crate::model::Sha256> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        if let (Some(p), Some(v), Some(h)) =
            (field("Package:"), field("Version:"), field("SHA256:"))
        {
            if let Ok(h) = crate::model::Sha256::parse(&h) {
                out.insert((p, v), h);
            }
        }
    }
    out
}

/// How an apt-get command ended: its own error lines for a package it
/// cannot find (`E: Unable to locate package`) or a version it does not
/// have (`E: Version '5.3.3-1.1' for 'lua5.3' was not found`), else a
/// failure with the end of its output.
fn apt_outcome(out: &crate::docker::ExecOutput, image: &str, what: String) -> Result<(), AptError> {
    let text = out.combined();
    let unknown: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("E: Unable to locate package "))
        .map(|p| p.trim().to_string())
        .collect();
    if !unknown.is_empty() {
        return Err(AptError::UnknownPackage {
            packages: unknown,
            image: image.to_string(),
        });
    }
    if let Some((version, package)) = text.lines().find_map(|l| {
        let rest = l.strip_prefix("E: Version '")?;
        let (version, rest) = rest.split_once("' for '")?;
        let (package, _) = rest.split_once('\'')?;
        Some((version.to_string(), package.to_string()))
    }) {
        return Err(AptError::VersionGone { package, version });
    }
    if out.code != 0 || out.timed_out {
        return Err(DockerError::Failed {
            what,
            image: image.to_string(),
            code: out.code,
            output: crate::docker::tail(&text, 40),
        }
        .into());
    }
    Ok(())
}

/// `'URL' FILE SIZE SHA256:HEX` lines of `apt-get --print-uris`.
fn parse_print_uris(text: &str) -> Vec<Deb> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let _url = w.next()?.strip_prefix('\'')?;
            let file = w.next()?.to_string();
            let _size = w.next()?;
            // Filled in from the lists when the line names another sum.
            let sha256 = w
                .find_map(|x| x.strip_prefix("SHA256:"))
                .and_then(|h| crate::model::Sha256::parse(h).ok())
                .unwrap_or_else(|| crate::model::Sha256::of(b""));
            let stem = file.strip_suffix(".deb")?;
            let mut parts = stem.split('_');
            let package = parts.next()?.to_string();
            let version = parts.next()?.replace("%3a", ":");
            Some(Deb {
                package,
                version,
                file,
                sha256,
                path: None,
            })
        })
        .collect()
}

/// Every wanted .deb, verified in the cache: those missing are downloaded
/// in a container with the network (`--download-only`), copied out and
/// checked against the lists' sha256. Under `--offline` a missing one is
/// an error naming its package.
#[allow(clippy::too_many_arguments)]
async fn cached_debs(
    engine: &Engine,
    image: &str,
    target: &Target,
    lists: &[u8],
    mut debs: Vec<Deb>,
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<Vec<Deb>, AptError> {
    let cache = fetcher.cache();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AptError::Io { path, source }
    };
    let mut missing = Vec::new();
    for (i, d) in debs.iter_mut().enumerate() {
        match cache
            .lookup(&d.sha256)
            .map_err(io(&cache.blob(&d.sha256)))?
        {
            crate::fetch::cache::Lookup::Verified { path, .. } => d.path = Some(path),
            _ => missing.push(i),
        }
    }
    if missing.is_empty() {
        return Ok(debs);
    }
    if fetcher.offline() {
        return Err(AptError::NotCached {
            what: "the .deb files".into(),
            packages: missing.iter().map(|&i| debs[i].package.clone()).collect(),
        });
    }
    let _step = Step::start(
        reporter,
        &format!("downloading {} .deb file(s)", missing.len()),
    );
    let spec = ContainerSpec::root(image, &target.platform, true, "apt-download");
    // The missing files at their exact versions (a lock's, or the lists').
    let wanted: Vec<String> = missing
        .iter()
        .map(|&i| format!("{}={}", debs[i].package, debs[i].version))
        .collect();
    let members = engine
        .with_container(&spec, async |c| {
            restore_lists(c, lists).await?;
            let out = c
                .exec(
                    &format!(
                        "set -e; {APT_ENV}; $APT {LISTS_OPTS} install -y -qq --download-only {}",
                        quoted(&wanted)
                    ),
                    &ExecOptions::default(),
                )
                .await?;
            apt_outcome(&out, c.image(), "apt-get install --download-only".into())?;
            Ok::<_, AptError>(c.copy_out_members("/var/cache/apt/archives").await?)
        })
        .await?;
    for &i in &missing {
        let d = &mut debs[i];
        let data = members
            .iter()
            .find(|(name, data)| data.is_some() && name.rsplit('/').next() == Some(d.file.as_str()))
            .and_then(|(_, data)| data.as_ref())
            .ok_or_else(|| AptError::CopyOut {
                path: format!("/var/cache/apt/archives/{}", d.file),
                message: "apt-get did not download it".into(),
            })?;
        let actual = crate::model::Sha256::of(data);
        if actual != d.sha256 {
            return Err(AptError::DebMismatch {
                file: d.file.clone(),
                actual: actual.to_string(),
                expected: d.sha256.to_string(),
            });
        }
        let path = cache.blob(&d.sha256);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        cache.write_atomic(&path, data).map_err(io(&path))?;
        d.path = Some(path);
    }
    Ok(debs)
}

/// Put the .deb files in apt's archive folder, where `--no-download`
/// installs them from.
async fn put_debs(c: &impl Run, debs: &[Deb]) -> Result<(), AptError> {
    let mut files = Vec::new();
    for d in debs {
        let path = d.path.as_ref().expect("cached_debs set every path");
        let data = std::fs::read(path).map_err(|source| AptError::Io {
            path: path.clone(),
            source,
        })?;
        files.push((d.file.clone(), 0o644, data));
    }
    let tar = crate::docker::tar_of(&files).map_err(|e| AptError::CopyOut {
        path: "/var/cache/apt/archives".into(),
        message: e.to_string(),
    })?;
    c.copy_in("/var/cache/apt/archives", tar).await?;
    Ok(())
}

#[cfg(test)]
mod uri_tests {
    use super::*;

    #[test]
    fn print_uris_lines_become_debs() {
        let h = "ab".repeat(32);
        let text = format!(
            "'http://deb.example/pool/main/l/lua5.3/liblua5.3-0_5.3.3-1.1%2bdeb11u1_amd64.deb' liblua5.3-0_5.3.3-1.1+deb11u1_amd64.deb 118412 SHA256:{h}\n\
             'http://deb.example/pool/main/e/epoch/tool_1%3a2.0-1_amd64.deb' tool_1%3a2.0-1_amd64.deb 10 SHA256:{h}\n\
             Reading package lists...\n'x' y.tar 1 MD5Sum:00\n"
        );
        let debs = parse_print_uris(&text);
        assert_eq!(debs.len(), 2);
        assert_eq!(debs[0].package, "liblua5.3-0");
        assert_eq!(debs[0].version, "5.3.3-1.1+deb11u1");
        assert_eq!(debs[0].sha256.as_str(), h);
        assert_eq!(debs[1].version, "1:2.0-1");
        let shown = format!("Package: tool\nVersion: 1:2.0-1\nSHA256: {h}\nSize: 10\n\nPackage: other\nVersion: 1\n");
        let sums = sha256_of_stanzas(&shown);
        assert_eq!(
            sums[&("tool".to_string(), "1:2.0-1".to_string())].as_str(),
            h
        );
        assert_eq!(sums.len(), 1);
    }

    #[test]
    fn apt_get_errors_become_the_errors_they_mean() {
        let out = |code: i64, stderr: &str| crate::docker::ExecOutput {
            code,
            stdout: "Reading package lists...\n".into(),
            stderr: stderr.into(),
            elapsed: std::time::Duration::ZERO,
            timed_out: false,
        };
        let e = apt_outcome(
            &out(100, "E: Unable to locate package zz9\n"),
            "img",
            "x".into(),
        );
        assert!(
            matches!(e, Err(AptError::UnknownPackage { ref packages, .. }) if packages == &["zz9"])
        );
        let e = apt_outcome(
            &out(100, "E: Version '5.3.0-0' for 'lua5.3' was not found\n"),
            "img",
            "x".into(),
        );
        assert!(
            matches!(e, Err(AptError::VersionGone { ref package, ref version }) if package == "lua5.3" && version == "5.3.0-0")
        );
        let e = apt_outcome(
            &out(100, "E: Unable to fetch some archives\n"),
            "img",
            "x".into(),
        );
        assert!(matches!(
            e,
            Err(AptError::Docker(DockerError::Failed { code: 100, .. }))
        ));
        assert!(apt_outcome(&out(0, ""), "img", "x".into()).is_ok());
    }
}

/// The exact `.deb` files the recipe's packages (and patchelf) install in
/// the target's sandbox image today, for `bundle lock`.
pub async fn lock_debs(
    engine: &Engine,
    target: &Target,
    apt: &Apt,
    fetcher: &crate::fetch::Fetcher,
    reporter: &dyn Reporter,
) -> Result<Vec<crate::model::plan::LockedDeb>, AptError> {
    let sandbox_tag = sandbox::sandbox_image(engine, target, reporter).await?;
    let lists = package_lists(engine, &sandbox_tag, target, apt, fetcher, reporter).await?;
    let spec = ContainerSpec::root(&sandbox_tag, &target.platform, false, "apt");
    let debs = listed_debs(engine, &spec, apt, &lists).await?;
    Ok(debs
        .into_iter()
        .map(|d| crate::model::plan::LockedDeb {
            package: d.package,
            version: d.version,
            deb: d.file,
            sha256: d.sha256,
        })
        .collect())
}

/// The cache key of an apt result: everything that shapes it.
async fn result_key(
    engine: &Engine,
    image: &str,
    lists: &[u8],
    apt: &Apt,
    locked: &[crate::model::plan::LockedDeb],
) -> Result<String, AptError> {
    let id = engine
        .image_id(image)
        .await?
        .unwrap_or_else(|| image.to_string());
    let inputs = serde_json::json!({
        "v": 1,
        "bundle": env!("CARGO_PKG_VERSION"),
        "image": id,
        "lists": crate::model::Sha256::of(lists).to_string(),
        "apt": apt,
        "locked": locked,
    });
    Ok(format!("result-{inputs}"))
}

/// A cached result: its record, and every file it wrote, by sha256.
#[derive(serde::Serialize, serde::Deserialize)]
struct Remembered {
    build: AptBuild,
    /// (path in the bundle, sha256) of each file written.
    blobs: Vec<(String, crate::model::Sha256)>,
}

/// Keep the result and its files in the cache (best effort: a failure only
/// costs the next build its shortcut).
pub(super) fn remember(
    cache: &crate::fetch::cache::Cache,
    kind: &str,
    key: &str,
    root: &Path,
    done: &AptBuild,
) {
    let mut blobs = Vec::new();
    for f in &done.files {
        let full = root.join(&f.path);
        let Ok(data) = std::fs::read(&full) else {
            return;
        };
        let sha = crate::model::Sha256::of(&data);
        let blob = cache.blob(&sha);
        if let Some(dir) = blob.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if cache.write_atomic(&blob, &data).is_err() {
            return;
        }
        blobs.push((f.path.clone(), sha));
    }
    let record = Remembered {
        build: done.clone(),
        blobs,
    };
    let _ = cache.write_json(&cache.keyed(kind, key, ".json"), &record);
}

/// Write a cached result's files into `root` when every one of them is in
/// the cache with its recorded sha256; else nothing (a fresh build runs).
pub(super) fn reuse(
    cache: &crate::fetch::cache::Cache,
    kind: &str,
    key: &str,
    root: &Path,
) -> Option<AptBuild> {
    let record: Remembered = cache.read_json(&cache.keyed(kind, key, ".json"))?;
    let mut found = Vec::new();
    for (rel, sha) in &record.blobs {
        let safe = crate::archive::safe_member_path(rel).ok()?;
        match cache.lookup(sha).ok()? {
            crate::fetch::cache::Lookup::Verified { path, .. } => found.push((safe, path)),
            _ => return None,
        }
    }
    for (rel, blob) in found {
        let dest = root.join(&rel);
        std::fs::create_dir_all(dest.parent()?).ok()?;
        std::fs::copy(&blob, &dest).ok()?;
        let slashed = crate::archive::slashed(&rel);
        let mode = if slashed.starts_with("bin/") || slashed.starts_with("libexec/") {
            0o755
        } else {
            0o644
        };
        crate::fsutil::set_mode(&dest, mode).ok()?;
    }
    Some(record.build)
}
