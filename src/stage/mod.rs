//! Producing the files: release members extracted from verified archives,
//! programs and libraries from apt in the target's image, wheels built from
//! sdists in the target's build image.

pub mod apt;
pub mod build;
pub mod crates;
pub mod npm;
pub mod release;
pub mod sdist;
pub mod wheel;

use std::future::Future;

use serde::Serialize;

use crate::model::plan::Plan;

/// One step of staging, as data: `bundle plan` shows them, the pipeline's
/// runner carries them out, and a fake runner can test their order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum StageStep {
    /// Copy wheel `index` of the plan into `wheels/`, hashing it as written.
    CopyWheel {
        index: usize,
        file: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        built_from: Option<String>,
    },
    /// Extract release `index`'s `files` into `bin/`, streamed.
    ExtractRelease {
        index: usize,
        name: String,
        files: Vec<String>,
    },
    /// Install Debian packages in the target's sandbox image, and take
    /// their binaries and the libraries the sandbox lacks.
    Apt {
        packages: Vec<String>,
        binaries: Vec<String>,
    },
    /// Unpack the npm packages into `node_modules/` and the runtime into
    /// `runtime/`, and write `bin/` launchers and the lock files.
    Npm {
        packages: usize,
        runtime: String,
        programs: Vec<String>,
    },
    /// Build `[[build]]` `index` in an image of the target (no network),
    /// and take its programs and the libraries the sandbox lacks.
    Build {
        index: usize,
        name: String,
        version: String,
        binaries: Vec<String>,
    },
}

impl StageStep {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            StageStep::CopyWheel {
                file,
                built_from: Some(sdist),
                ..
            } => format!("copy wheels/{file} (built from {sdist} in the target's build image)"),
            StageStep::CopyWheel { file, .. } => format!("copy wheels/{file}"),
            StageStep::ExtractRelease { name, files, .. } => {
                let bins: Vec<String> = files
                    .iter()
                    .map(|f| format!("bin/{}", f.rsplit('/').next().unwrap_or(f)))
                    .collect();
                format!("extract {} from release {name}", bins.join(", "))
            }
            StageStep::Apt { packages, binaries } => format!(
                "apt-get install {} in the sandbox image; take {} and the libraries it lacks",
                packages.join(" "),
                binaries
                    .iter()
                    .map(|b| format!("bin/{b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            StageStep::Npm {
                packages,
                runtime,
                programs,
            } => format!(
                "unpack {packages} npm package(s) into node_modules/ ({runtime}); write {}",
                programs
                    .iter()
                    .map(|p| format!("bin/{p}"))
                    .chain(["package-lock.json".to_string()])
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            StageStep::Build {
                name,
                version,
                binaries,
                ..
            } => format!(
                "build {name} {version} in the target's image (no network); take {} and the libraries it lacks",
                binaries
                    .iter()
                    .map(|b| format!("bin/{}", b.rsplit('/').next().unwrap_or(b)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The staging steps of a plan, in the order they run: wheels, releases,
/// then apt (the only one that needs Docker).
pub fn steps(plan: &Plan) -> Vec<StageStep> {
    let mut out: Vec<StageStep> = plan
        .wheels
        .iter()
        .enumerate()
        .map(|(index, w)| StageStep::CopyWheel {
            index,
            file: w.filename.clone(),
            built_from: w.sdist.as_ref().map(|s| s.filename.clone()),
        })
        .collect();
    out.extend(
        plan.releases
            .iter()
            .enumerate()
            .map(|(index, r)| StageStep::ExtractRelease {
                index,
                name: r.name.clone(),
                files: if r.files.is_empty() {
                    vec![r.name.clone()]
                } else {
                    r.files.clone()
                },
            }),
    );
    if let Some(n) = &plan.npm {
        let r = &n.runtime;
        out.push(StageStep::Npm {
            packages: n.tree.len(),
            runtime: match (&r.package, &r.version) {
                (Some(p), Some(v)) => format!("runtime {p} {v}"),
                _ => "the sandbox's own node".into(),
            },
            programs: n.programs().into_keys().collect(),
        });
    }
    if let Some(a) = &plan.apt {
        out.push(StageStep::Apt {
            packages: a.packages.clone(),
            binaries: a.binaries.clone(),
        });
    }
    out.extend(
        plan.builds
            .iter()
            .enumerate()
            .map(|(index, b)| StageStep::Build {
                index,
                name: b.name.clone(),
                version: b.version.clone(),
                binaries: b.binaries.clone(),
            }),
    );
    out
}

/// Carries out staging steps.
pub trait StageRunner {
    type Error;
    fn run(&mut self, step: &StageStep) -> impl Future<Output = Result<(), Self::Error>>;
}

/// Run the steps in order; the first failure stops the rest.
pub async fn run_all<R: StageRunner>(runner: &mut R, steps: &[StageStep]) -> Result<(), R::Error> {
    for step in steps {
        runner.run(step).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::plan::{
        ArchiveKind, PlannedApt, PlannedRelease, PlannedSdist, PlannedWheel, PLAN_SCHEMA,
    };
    use crate::model::{Sha256, TargetSummary};

    /// Records the steps it is asked to run, and fails where told.
    struct FakeRunner {
        ran: Vec<String>,
        fail_at: Option<usize>,
    }

    impl StageRunner for FakeRunner {
        type Error = String;
        async fn run(&mut self, step: &StageStep) -> Result<(), String> {
            if self.fail_at == Some(self.ran.len()) {
                return Err(format!("failed: {}", step.describe()));
            }
            self.ran.push(step.describe());
            Ok(())
        }
    }

    fn plan() -> Plan {
        let h = Sha256::of(b"x");
        Plan {
            schema: PLAN_SCHEMA,
            name: "combo".into(),
            target: TargetSummary {
                name: "t".into(),
                platform: "linux/amd64".into(),
                glibc: "2.31".into(),
                python: "3.8.10".into(),
            },
            index_url: "http://127.0.0.1:9/simple/".into(),
            requirements: vec!["app".into()],
            wheels: vec![
                PlannedWheel {
                    package: "app".into(),
                    version: "1.0".into(),
                    filename: "app-1.0-py3-none-any.whl".into(),
                    url: "u".into(),
                    sha256: Some(h.clone()),
                    size: None,
                    sdist: None,
                },
                PlannedWheel {
                    package: "fast".into(),
                    version: "2.0".into(),
                    filename: "fast-2.0-cp38-cp38-linux_x86_64.whl".into(),
                    url: "u".into(),
                    sha256: Some(h.clone()),
                    size: None,
                    sdist: Some(PlannedSdist {
                        filename: "fast-2.0.tar.gz".into(),
                        sha256: h.clone(),
                    }),
                },
            ],
            releases: vec![PlannedRelease {
                name: "deno".into(),
                version: "1".into(),
                url: "u".into(),
                sha256: h,
                archive: ArchiveKind::Zip,
                files: vec!["x/deno".into()],
            }],
            apt: Some(PlannedApt {
                packages: vec!["lua5.3".into()],
                binaries: vec!["lua5.3".into()],
                link: None,
                debs: Vec::new(),
            }),
            npm: None,
            builds: vec![crate::model::plan::PlannedBuild {
                name: "hello".into(),
                version: "1.0".into(),
                source: crate::model::plan::BuildSource::Archive {
                    url: "u".into(),
                    sha256: Sha256::of(b"y"),
                    archive: ArchiveKind::TarGz,
                },
                packages: vec!["libsqlite3-dev".into()],
                script: Some("make install".into()),
                features: Vec::new(),
                binaries: vec!["hello".into()],
                link: None,
            }],
            excluded: Vec::new(),
            replaced: Vec::new(),
            profile: None,
            checks: Vec::new(),
            verify: Default::default(),
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_plan_stages_wheels_then_releases_then_apt_then_builds() {
        let steps = steps(&plan());
        let mut runner = FakeRunner {
            ran: Vec::new(),
            fail_at: None,
        };
        block_on(run_all(&mut runner, &steps)).unwrap();
        assert_eq!(
            runner.ran,
            [
                "copy wheels/app-1.0-py3-none-any.whl",
                "copy wheels/fast-2.0-cp38-cp38-linux_x86_64.whl (built from fast-2.0.tar.gz in the target's build image)",
                "extract bin/deno from release deno",
                "apt-get install lua5.3 in the sandbox image; take bin/lua5.3 and the libraries it lacks",
                "build hello 1.0 in the target's image (no network); take bin/hello and the libraries it lacks",
            ]
        );
        let json = serde_json::to_value(&steps[3]).unwrap();
        assert_eq!(json["step"], "apt");
        let json = serde_json::to_value(&steps[4]).unwrap();
        assert_eq!(json["step"], "build");
    }

    #[test]
    fn the_first_failure_stops_the_rest() {
        let steps = steps(&plan());
        let mut runner = FakeRunner {
            ran: Vec::new(),
            fail_at: Some(2),
        };
        let e = block_on(run_all(&mut runner, &steps)).unwrap_err();
        assert_eq!(e, "failed: extract bin/deno from release deno");
        assert_eq!(runner.ran.len(), 2);
    }
}
