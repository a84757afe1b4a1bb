//! Wheels built from sdists, inside the target's build image, for recipes
//! with `sdists = "build"`.
//!
//! The sdist is downloaded and verified like any file. Its build
//! requirements (`[build-system] requires`, read from its pyproject.toml
//! without running anything) are resolved for the target and fetched as
//! wheels. The build then runs in a container of the build image with no
//! network: `pip wheel --no-deps --no-index --find-links <those wheels>`,
//! with the image's own Python. The wheel is cached by the sdist's hash and
//! the image it was built in.

use crate::error::Diagnose;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use pep508_rs::{Requirement, VerbatimUrl};

use crate::config::target::Target;
use crate::docker::Run;
use crate::docker::{sh_quote, tar_of, ContainerSpec, DockerError, Engine, ExecOptions};
use crate::fetch::{Blob, FetchError, Fetcher};
use crate::model::Sha256;
use crate::report::{Reporter, Step};

#[derive(Debug, thiserror::Error)]
pub enum SdistError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("cannot read {file}: {message}")]
    Unreadable { file: String, message: String },
    #[error("resolving the build requirements of {file}: {message}")]
    BuildRequires { file: String, message: String },
    #[error("the build image's Python is {found}, but target {target} has Python {expected}")]
    WrongPython {
        found: String,
        expected: String,
        target: String,
    },
    #[error("building {file} in {image} failed:\n{output}")]
    Failed {
        file: String,
        image: String,
        output: String,
    },
    #[error("{file}: {what}")]
    Io {
        file: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("building {file} wrote no wheel")]
    NoWheel { file: String },
}

impl Diagnose for SdistError {
    fn hint(&self) -> Option<String> {
        match self {
            SdistError::Docker(e) => e.hint(),
            SdistError::Fetch(e) => e.hint(),
            SdistError::Failed { .. } => Some(
                "the output is pip's, from the target image; a missing C library is installed with the target's `system_packages`".into(),
            ),
            SdistError::WrongPython { .. } => {
                Some("set the target's `python` to the version its image has".into())
            }
            _ => None,
        }
    }
}

pub use crate::resolve::{BuiltWheel, SdistRef};

/// Builds wheels from sdists for one target. Docker is reached only when a
/// build is not already in the cache.
pub struct SdistBuilder {
    target: Target,
    fetcher: Arc<Fetcher>,
    index_url: String,
    engine: tokio::sync::OnceCell<Engine>,
    reporter: Arc<dyn Reporter>,
    /// One cell per sdist URL: each sdist is built once per run, while
    /// different sdists download and build at the same time.
    in_flight: crate::per_key::PerKey<String, tokio::sync::OnceCell<BuiltWheel>>,
}

impl std::fmt::Debug for SdistBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SdistBuilder({})", self.target.name)
    }
}

impl crate::resolve::WheelBuilder for SdistBuilder {
    fn build_wheel<'a>(&'a self, sdist: &'a SdistRef) -> crate::resolve::builder::BuildFuture<'a> {
        Box::pin(async move {
            self.wheel(sdist)
                .await
                .map_err(|e| crate::resolve::BuildError {
                    hint: e.hint(),
                    source: Box::new(e),
                })
        })
    }
}

impl SdistBuilder {
    pub fn new(
        target: &Target,
        fetcher: Arc<Fetcher>,
        index_url: &str,
        reporter: Arc<dyn Reporter>,
    ) -> SdistBuilder {
        SdistBuilder {
            reporter,
            target: target.clone(),
            fetcher,
            index_url: index_url.to_string(),
            engine: tokio::sync::OnceCell::new(),
            in_flight: Default::default(),
        }
    }

    async fn engine(&self) -> Result<&Engine, DockerError> {
        self.engine
            .get_or_try_init(|| Engine::connect("sdists = \"build\" needs"))
            .await
    }

    /// The wheel built from `sdist` (from the cache, or built now).
    pub async fn wheel(&self, sdist: &SdistRef) -> Result<BuiltWheel, SdistError> {
        self.in_flight
            .get(&sdist.url)
            .get_or_try_init(|| self.fetch_or_build(sdist))
            .await
            .cloned()
    }

    async fn fetch_or_build(&self, sdist: &SdistRef) -> Result<BuiltWheel, SdistError> {
        let blob = self
            .fetcher
            .download(&sdist.url, sdist.sha256.as_ref(), None, &sdist.filename)
            .await?;
        let key = format!(
            "{}\n{}\n{}\n{}",
            blob.sha256, self.target.image, self.target.platform, self.target.python
        );
        let dir = self.fetcher.cache().keyed("built", &key, "");
        let built = match cached_wheel(&dir, &blob.sha256) {
            Some(w) => w,
            None => self.build(sdist, &blob, &dir).await?,
        };
        Ok(built)
    }

    async fn build(
        &self,
        sdist: &SdistRef,
        blob: &Blob,
        dir: &Path,
    ) -> Result<BuiltWheel, SdistError> {
        let reporter = self.reporter.clone();
        let file = sdist.filename.clone();
        let requires = build_requires(&blob.path, &file)?;
        let deps = self.fetch_build_requires(&file, requires).await?;

        let engine = self.engine().await?;
        let image =
            crate::docker::sandbox::build_image(engine, &self.target, reporter.as_ref()).await?;
        let step = Step::start(reporter.as_ref(), &format!("building {file}"));
        let spec = ContainerSpec::root(image.clone(), self.target.platform.clone(), false, "sdist");
        let members = engine
            .with_container(&spec, async |c| {
                build_in(c, &self.target, &file, &blob.path, &deps).await
            })
            .await?;
        drop(step);
        let tmp_root = self
            .fetcher
            .cache()
            .tmp_dir()
            .map_err(|source| SdistError::Io {
                file: file.clone(),
                what: "making the cache's temporary folder",
                source,
            })?;
        store_wheel(members, dir, &file, &blob.sha256, &tmp_root)
    }

    /// Resolve and fetch the build requirements, as wheels, for the target.
    async fn fetch_build_requires(
        &self,
        file: &str,
        requires: Vec<Requirement<VerbatimUrl>>,
    ) -> Result<Vec<(String, PathBuf)>, SdistError> {
        let failed = |message: String| SdistError::BuildRequires {
            file: file.to_string(),
            message,
        };
        // The build environment starts empty: nothing is preinstalled.
        let resolution = crate::resolve::resolve_standalone(
            &self.index_url,
            self.fetcher.clone(),
            &self.target,
            requires,
        )
        .await
        .map_err(failed)?;
        let mut out = Vec::new();
        for p in resolution.packages {
            let blob = self
                .fetcher
                .download(
                    &p.wheel.url,
                    p.wheel.sha256.as_ref(),
                    p.wheel.size,
                    &p.wheel.filename,
                )
                .await?;
            out.push((p.wheel.filename, blob.path));
        }
        Ok(out)
    }
}

/// In a container of the build image (no network): the sdist and its build
/// requirements copied in, the image's Python checked against the target's,
/// `pip wheel` run; the files it wrote copied out.
async fn build_in(
    c: &impl Run,
    target: &Target,
    file: &str,
    sdist: &Path,
    deps: &[(String, PathBuf)],
) -> Result<crate::docker::Members, SdistError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| SdistError::Io {
            file: p.display().to_string(),
            what: "reading",
            source,
        })
    };
    let mut files = vec![(format!("build/{file}"), 0o644, read(sdist)?)];
    for (name, path) in deps {
        files.push((format!("build/deps/{name}"), 0o644, read(path)?));
    }
    let tar = tar_of(&files).map_err(|source| SdistError::Io {
        file: file.to_string(),
        what: "packing for the build container",
        source,
    })?;
    c.run_ok(
        "mkdir -p /build/deps /build/out",
        "mkdir",
        &ExecOptions::default(),
    )
    .await?;
    c.copy_in("/", tar).await?;
    let (major, minor) = target.python_major_minor();
    let version = c
        .run_ok(
            "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'",
            "python3 --version",
            &ExecOptions::default(),
        )
        .await?;
    let found = version.stdout.trim().to_string();
    if found != format!("{major}.{minor}") {
        return Err(SdistError::WrongPython {
            found,
            expected: target.python.to_string(),
            target: target.name.clone(),
        });
    }
    let out = c
        .exec(
            &format!(
                "cd /build && python3 -m pip wheel --no-deps --no-index --find-links /build/deps \
                 --disable-pip-version-check --no-cache-dir --wheel-dir /build/out {}",
                sh_quote(&format!("/build/{file}"))
            ),
            &ExecOptions::default(),
        )
        .await?;
    if out.code != 0 {
        return Err(SdistError::Failed {
            file: file.to_string(),
            image: c.image().to_string(),
            output: crate::docker::tail(&out.combined(), 40),
        });
    }
    Ok(c.copy_out_members("/build/out").await?)
}

/// The name of the file, beside a built wheel, that records its sha256.
const WHEEL_HASH: &str = "wheel.sha256";

/// A wheel built earlier, if it is still intact: its bytes must hash to
/// what was recorded when it was built. A damaged one is removed (and so
/// built again).
fn cached_wheel(dir: &Path, sdist_sha256: &Sha256) -> Option<BuiltWheel> {
    let recorded = std::fs::read_to_string(dir.join(WHEEL_HASH)).ok()?;
    let (hash, name) = recorded.trim_end().split_once("  ")?;
    let recorded = Sha256::parse(hash).ok()?;
    let path = dir.join(name);
    let ok_name = name.ends_with(".whl") && !name.contains('/') && !name.starts_with('.');
    let (actual, size) = Sha256::of_file(&path).ok()?;
    if !ok_name || actual != recorded {
        tracing::warn!(
            "the wheel built earlier in {} is damaged; building it again",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(dir);
        return None;
    }
    Some(BuiltWheel {
        filename: name.to_string(),
        path,
        sha256: actual,
        size,
        sdist_sha256: sdist_sha256.clone(),
    })
}

/// Take the one wheel out of the copied `/build/out` and keep it in `dir`,
/// with its sha256 beside it.
fn store_wheel(
    members: crate::docker::Members,
    dir: &Path,
    file: &str,
    sdist_sha256: &Sha256,
    tmp_root: &Path,
) -> Result<BuiltWheel, SdistError> {
    let bad = |source: std::io::Error| SdistError::Io {
        file: file.to_string(),
        what: "keeping the built wheel in the cache",
        source,
    };
    let wheel = members
        .into_iter()
        .rev()
        .filter_map(|(path, data)| {
            let name = Path::new(&path).file_name()?.to_string_lossy().into_owned();
            let wheel = name.ends_with(".whl")
                && crate::resolve::tags::WheelName::parse(&name).is_some()
                && !name.starts_with('.');
            Some((name, data?)).filter(|_| wheel)
        })
        .next();
    let (name, data) = wheel.ok_or_else(|| SdistError::NoWheel {
        file: file.to_string(),
    })?;
    let sha256 = Sha256::of(&data);
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(bad)?;
    let tmp = tempfile::tempdir_in(tmp_root).map_err(bad)?;
    std::fs::write(tmp.path().join(&name), &data).map_err(bad)?;
    std::fs::write(tmp.path().join(WHEEL_HASH), format!("{sha256}  {name}\n")).map_err(bad)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(tmp.keep(), dir).map_err(bad)?;
    Ok(BuiltWheel {
        path: dir.join(&name),
        filename: name,
        sha256,
        size: data.len() as u64,
        sdist_sha256: sdist_sha256.clone(),
    })
}

/// `[build-system] requires` of an sdist, read from its pyproject.toml; the
/// setuptools default when there is none. `wheel` is added for setuptools,
/// whose older versions ask for it during the build.
fn build_requires(path: &Path, file: &str) -> Result<Vec<Requirement<VerbatimUrl>>, SdistError> {
    let bad = |message: String| SdistError::Unreadable {
        file: file.to_string(),
        message,
    };
    let pyproject = read_pyproject(path, file).map_err(bad)?;
    let mut requires: Vec<String> = vec!["setuptools>=40.8.0".into(), "wheel".into()];
    let mut backend = None;
    if let Some(text) = pyproject {
        let value: toml::Value =
            toml::from_str(&text).map_err(|e| bad(format!("pyproject.toml: {e}")))?;
        if let Some(bs) = value.get("build-system") {
            if let Some(list) = bs.get("requires").and_then(|r| r.as_array()) {
                requires = list
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
            }
            backend = bs
                .get("build-backend")
                .and_then(|b| b.as_str())
                .map(str::to_string);
        }
    }
    let setuptools = backend
        .as_deref()
        .is_none_or(|b| b.starts_with("setuptools"));
    if setuptools && !requires.iter().any(|r| r.trim_start().starts_with("wheel")) {
        requires.push("wheel".into());
    }
    requires
        .iter()
        .map(|r| {
            Requirement::<VerbatimUrl>::from_str(r)
                .map_err(|e| bad(format!("build requirement `{r}`: {e}")))
        })
        .collect()
}

/// The top-level pyproject.toml of an sdist (.tar.gz or .zip), if any.
fn read_pyproject(path: &Path, file: &str) -> Result<Option<String>, String> {
    use crate::archive::{self, ArchiveKind};
    let kind = ArchiveKind::from_name(file);
    if !matches!(kind, ArchiveKind::Zip | ArchiveKind::TarGz) {
        return Err("only .tar.gz and .zip sdists can be built".into());
    }
    // `<top>/pyproject.toml`: the sdist's own, not one deeper down.
    let is_top = |p: &Path| p.components().count() == 2 && p.ends_with("pyproject.toml");
    let found = archive::read_member(kind, path, archive::Limits::from_env(), &is_top, 1 << 20)
        .map_err(|e| e.to_string())?;
    Ok(found.map(|(_, data)| String::from_utf8_lossy(&data).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{Answer, FakeContainer};

    fn run_build(c: &FakeContainer) -> Result<crate::docker::Members, SdistError> {
        let d = tempfile::tempdir().unwrap();
        let sdist = d.path().join("pkg-1.0.tar.gz");
        std::fs::write(&sdist, b"sdist").unwrap();
        let dep = d.path().join("setuptools-1-py3-none-any.whl");
        std::fs::write(&dep, b"wheel").unwrap();
        let target = Target::load("ubuntu-20.04").unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(build_in(
                c,
                &target,
                "pkg-1.0.tar.gz",
                &sdist,
                &[("setuptools-1-py3-none-any.whl".into(), dep)],
            ))
    }

    #[test]
    fn the_build_runs_offline_with_the_targets_python_and_copies_the_wheel_out() {
        let c = FakeContainer::new()
            .answer("sys.version_info", vec![Answer::ok("3.8\n")])
            .file("/build/out/pkg-1.0-py3-none-any.whl", b"PK wheel");
        let members = run_build(&c).unwrap();
        assert_eq!(
            members,
            [(
                "out/pkg-1.0-py3-none-any.whl".to_string(),
                Some(b"PK wheel".to_vec())
            )]
        );
        assert_eq!(*c.copied_in.lock().unwrap(), ["/"]);
        assert_eq!(
            c.ran("pip wheel --no-deps --no-index --find-links /build/deps"),
            1
        );
    }

    #[test]
    fn another_python_or_a_failed_build_is_named() {
        let c = FakeContainer::new().answer("sys.version_info", vec![Answer::ok("3.9\n")]);
        let e = run_build(&c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the build image's Python is 3.9, but target ubuntu-20.04 has Python 3.8.10"
        );
        assert_eq!(
            c.ran("pip wheel"),
            0,
            "nothing is built for the wrong Python"
        );

        let c = FakeContainer::new()
            .answer("sys.version_info", vec![Answer::ok("3.8\n")])
            .answer(
                "pip wheel",
                vec![Answer::fail(1, "error: command 'cc' failed")],
            );
        match run_build(&c).unwrap_err() {
            SdistError::Failed { file, output, .. } => {
                assert_eq!(file, "pkg-1.0.tar.gz");
                assert!(output.contains("command 'cc' failed"), "{output}");
            }
            other => panic!("{other}"),
        }
    }

    fn sdist_with(pyproject: Option<&str>) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("pkg-1.0.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut add = |name: &str, text: &str| {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, name, text.as_bytes()).unwrap();
        };
        add("pkg-1.0/setup.py", "");
        // A pyproject.toml below the top folder is not the sdist's own.
        add(
            "pkg-1.0/sub/pyproject.toml",
            "[build-system]\nrequires = [\"nope\"]\n",
        );
        if let Some(p) = pyproject {
            add("pkg-1.0/pyproject.toml", p);
        }
        tar.into_inner().unwrap().finish().unwrap();
        (d, path)
    }

    fn names(reqs: Vec<Requirement<VerbatimUrl>>) -> Vec<String> {
        reqs.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn setuptools_is_the_default_backend() {
        let (_d, path) = sdist_with(None);
        let reqs = build_requires(&path, "pkg-1.0.tar.gz").unwrap();
        assert_eq!(names(reqs), ["setuptools>=40.8.0", "wheel"]);
    }

    #[test]
    fn declared_requirements_are_used_and_setuptools_gets_wheel() {
        let (_d, path) = sdist_with(Some(
            "[build-system]\nrequires = [\"setuptools>=61\", \"cython<3\"]\nbuild-backend = \"setuptools.build_meta\"\n",
        ));
        let reqs = build_requires(&path, "pkg-1.0.tar.gz").unwrap();
        assert_eq!(names(reqs), ["setuptools>=61", "cython<3", "wheel"]);
        let (_d, path) = sdist_with(Some(
            "[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
        ));
        let reqs = build_requires(&path, "pkg-1.0.tar.gz").unwrap();
        assert_eq!(names(reqs), ["hatchling"]);
    }

    #[test]
    fn a_bad_pyproject_is_reported() {
        let (_d, path) = sdist_with(Some("[build-system\n"));
        let e = build_requires(&path, "pkg-1.0.tar.gz").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read pkg-1.0.tar.gz: pyproject.toml"),
            "{e}"
        );
    }
}
