//! `bundle verify`: run a bundle in a faithful copy of the target sandbox
//! (no network, the target's user, files arriving in its upload folder, its
//! Python and the packages it already has, its command time limit) and
//! report each step.
//!
//! One file per step, in the order they run: [`upload`], [`install`]
//! (PROMPT.txt's code), [`loads`] (every ELF resolves with the sandbox's
//! loader), [`programs`] (every program starts), [`checks`] (the recipe's),
//! [`imports`] (every module imports). [`bundle`] reads what is uploaded,
//! [`preinstalled`] makes the image with the target's own packages, and
//! [`items`] is how the steps that prove many things report each one.

mod bundle;
mod checks;
mod imports;
mod install;
pub mod items;
mod loads;
mod preinstalled;
mod programs;
mod report;
mod upload;

use crate::error::Diagnose;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::assemble::{self, FileKind, Manifest};
use crate::config::target::Target;
use crate::docker::Run;
use crate::docker::{ContainerSpec, DockerError, Engine, ExecOptions};
use crate::fetch::Fetcher;
use crate::report::{Reporter, Stage, Step as Progress};

use bundle::{read_bundle, tampered_files, Bundle};
pub use items::{Item, Status};
use report::{cached_report, remember, result_key};
pub use report::{Report, Step};

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

/// The manifest of a bundle folder or archive.
pub fn manifest_of(path: &Path) -> Result<Manifest, VerifyError> {
    read_bundle(path).map(|b| b.manifest)
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
    let image = preinstalled::preinstalled_image(
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
    let mut steps = vec![upload::upload(c, bundle, target, reporter).await?];
    for step in install::prompt_steps(c, bundle, target, timeout, reporter).await? {
        let ok = step.ok;
        steps.push(step);
        if !ok {
            return Ok(steps);
        }
    }
    // What a user can reach, whether or not the recipe declares a check:
    // every ELF loads, every module imports (which writes the .pyc files
    // install.py leaves to the first import, once, before the programs and
    // checks import the same modules), every program starts; then the
    // recipe's checks.
    steps.extend(loads::load_step(c, bundle, target, reporter).await?);
    steps.extend(imports::import_step(c, bundle, target, reporter).await?);
    steps.extend(programs::program_step(c, bundle, target, reporter).await?);
    steps.extend(checks::check_steps(c, bundle, target, timeout, reporter).await?);
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

/// Run a step's script (stdout and stderr in one stream), with a
/// progress line; the caller reads its items from the output.
async fn exec_items(
    c: &impl Run,
    name: &str,
    script: &str,
    backstop: Duration,
    reporter: &dyn Reporter,
) -> Result<(crate::docker::ExecOutput, Duration), VerifyError> {
    let progress = Progress::start(reporter, name);
    let out = c
        .exec(
            &format!("exec 2>&1\n{script}"),
            &ExecOptions {
                timeout: Some(backstop),
                ..Default::default()
            },
        )
        .await?;
    drop(progress);
    let elapsed = out.elapsed;
    Ok((out, elapsed))
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
        items: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{Answer, FakeContainer};
    use crate::model::Check;

    /// A folder bundle with these checks and no files, as `bundle build`
    /// writes it.
    pub(super) fn folder_bundle(checks: Vec<Check>) -> (tempfile::TempDir, Bundle) {
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
            verify: Default::default(),
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

    /// What the programs step's script prints for `bin/demo` starting.
    const DEMO_STARTS: &str = "::bundle-item::\tbin/demo\n::bundle-magic::23212f62\n::bundle-try::--version\ndemo 1.2\n::bundle-rc::0\n";

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
            .answer("bundle-programs", vec![Answer::ok(DEMO_STARTS)])
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
    fn a_program_that_does_not_start_fails_its_step_and_the_checks_still_run() {
        let (_d, bundle) = folder_bundle(vec![check("demo --version", None)]);
        let c = FakeContainer::new()
            .answer("id -u", vec![Answer::ok("1000\n1000\n")])
            .answer(
                "bundle-programs",
                vec![Answer::ok(
                    "::bundle-item::\tbin/demo\n::bundle-magic::23212f62\n::bundle-try::--version\n\
                     timeout: failed to run command '/mnt/data/demo/bin/demo': No such file or directory\n::bundle-rc::127\n",
                )],
            );
        let steps = run(&c, &bundle);
        let programs = steps.iter().find(|s| s.name == "programs").unwrap();
        assert!(!programs.ok);
        assert_eq!(programs.items.len(), 1);
        assert_eq!(programs.items[0].name, "bin/demo");
        assert_eq!(programs.items[0].status, Status::Fail);
        assert!(
            programs
                .output
                .starts_with("FAIL bin/demo: it could not be started"),
            "{}",
            programs.output
        );
        assert_eq!(
            c.ran("cd /mnt/data/demo; /mnt/data/demo/bin/demo --version"),
            1
        );
        // The program step's script: by full path, from /tmp, no input.
        assert_eq!(c.ran("bin/demo\t/mnt/data/demo/bin/demo\n"), 1);
        assert_eq!(c.ran("</dev/null"), 1);
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
            .answer("bundle-programs", vec![Answer::ok(DEMO_STARTS)])
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
}
