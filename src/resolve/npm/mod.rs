//! npm packages for the target: packuments from the registry
//! ([`packument`]), versions picked as npm picks them ([`pick`]), platform
//! packages chosen for the target's os, cpu and libc ([`platform`]), the
//! `node_modules` tree built and hoisted as npm builds it ([`tree`]). The
//! runtime, chosen by the target's ELF check, comes from
//! `stage::npm::runtime`, which reads the same registry.

pub mod packument;
pub mod pick;
pub mod platform;
pub mod tree;

use std::sync::Arc;

use crate::config::npm::Npm;
use crate::config::npm::Range;
use crate::config::target::Target;
use crate::error::Diagnose;
use crate::fetch::{FetchError, Fetcher};
use crate::model::npm::{spec_name, PlannedNpm, PlannedRuntime, RuntimeKind, SkippedNpm};

use packument::Registry;
use pick::PickContext;
use platform::Platform;

/// npm's default registry, used unless `--npm-registry` or
/// `NPM_CONFIG_REGISTRY` names another.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";

/// Why npm packages cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum NpmError {
    #[error("cannot read the registry's page for {package}")]
    Registry {
        package: String,
        #[source]
        source: FetchError,
    },
    #[error("the registry's page for {package} ({url}) is not a packument: {message}")]
    BadPackument {
        package: String,
        url: String,
        message: String,
    },
    #[error("the registry lists no versions of {package} ({url})")]
    NoVersions { package: String, url: String },
    #[error("no version of {package} fits `{spec}`{}{}{}", if .required_by == "the request" { String::new() } else { format!(" (needed by {})", .required_by) }, .before.as_ref().map(|b| format!(" among those published by {b}")).unwrap_or_default(), if .newest.is_empty() { String::new() } else { format!("; the newest are {}", .newest.join(", ")) })]
    NoMatch {
        package: String,
        spec: String,
        required_by: String,
        newest: Vec<String>,
        before: Option<String>,
    },
    #[error("{package} (needed by {required_by}) is not for the target: {why}")]
    Platform {
        package: String,
        required_by: String,
        why: String,
    },
    #[error("{package} depends on {dependency} in a way bundle cannot fetch: {message}")]
    BadDependency {
        package: String,
        dependency: String,
        message: String,
    },
    #[error("{package}: {message}")]
    BadIntegrity { package: String, message: String },
    #[error("{package}: its tarball is at {url}, which is not an http(s) URL")]
    BadTarballUrl { package: String, url: String },
    #[error("cannot fetch {package}")]
    Fetch {
        package: String,
        #[source]
        source: FetchError,
    },
    #[error("cannot read {package}'s program: {message}")]
    RuntimeScan { package: String, message: String },
    #[error("no version of {package} in `{range}` runs on target {target}{}", if .tried.is_empty() { " (none was published)".to_string() } else { format!(": {}", .tried.join("; ")) })]
    NoRuntime {
        package: String,
        range: String,
        target: String,
        tried: Vec<String>,
    },
    #[error("[npm] runtime range `{range}`: {message}")]
    BadRange { range: String, message: String },
}

impl Diagnose for NpmError {
    fn exit_code(&self) -> i32 {
        match self {
            NpmError::Registry { source, .. } | NpmError::Fetch { source, .. } => {
                source.exit_code()
            }
            NpmError::BadRange { .. } => crate::error::BAD_INPUT,
            _ => crate::error::WORK_FAILED,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            NpmError::Registry { source: FetchError::NotFound { .. }, .. } => Some(
                "check the package's name; for another registry, pass --npm-registry URL or set NPM_CONFIG_REGISTRY".into(),
            ),
            NpmError::Registry { source: FetchError::Http { .. }, .. } => Some(
                "check the network and the registry's URL (--npm-registry or NPM_CONFIG_REGISTRY); behind a TLS-intercepting proxy, point SSL_CERT_FILE at its CA".into(),
            ),
            NpmError::Registry { source, .. } | NpmError::Fetch { source, .. } => source.hint(),
            NpmError::NoMatch { .. } => Some(
                "relax the range, or check the newest versions listed".into(),
            ),
            NpmError::Platform { .. } => Some(
                "the package is made for other machines; pick a target it supports (--target), or leave it out".into(),
            ),
            NpmError::NoRuntime { .. } => Some(
                "widen the runtime's range (runtime = \"node@>=18\"), use runtime = \"system\" when the sandbox has node, or pick a target with a newer glibc".into(),
            ),
            _ => None,
        }
    }
}

/// The registry URL: `--npm-registry`, else `NPM_CONFIG_REGISTRY`, else
/// npm's default.
pub fn registry_url(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            std::env::var("NPM_CONFIG_REGISTRY")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .or_else(|| {
            std::env::var("npm_config_registry")
                .ok()
                .filter(|v| !v.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_REGISTRY.to_string())
}

/// Planning an `[npm]` table: the registry (its packuments asked for at
/// once), the runtime's range, and how versions are picked.
pub struct Planner {
    registry: Arc<Registry>,
    ctx: PickContext,
    range: Range,
    requests: Vec<(String, String)>,
}

impl Planner {
    /// Start planning `npm` against the registry at `registry_url`.
    pub fn new(npm: &Npm, registry_url: &str, fetcher: Arc<Fetcher>) -> Result<Planner, NpmError> {
        let before = npm.exclude_newer.clone();
        let registry = Arc::new(Registry::new(registry_url, fetcher, before.is_some()));
        let range = Range::parse(&npm.runtime_range).map_err(|message| NpmError::BadRange {
            range: npm.runtime_range.clone(),
            message,
        })?;
        let requests: Vec<(String, String)> = npm
            .packages
            .iter()
            .map(|p| {
                let name = spec_name(p);
                let spec = p[name.len()..].strip_prefix('@').unwrap_or("");
                let spec = if spec.is_empty() { "latest" } else { spec };
                (name.to_string(), spec.to_string())
            })
            .collect();
        if npm.tree.is_none() {
            // Fetched while the runtime is chosen.
            registry.prefetch(requests.iter().map(|(n, _)| n.clone()));
        }
        Ok(Planner {
            registry,
            ctx: PickContext { before, node: None },
            range,
            requests,
        })
    }

    /// The registry, for the runtime's package.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// How versions are picked (the cutoff date).
    pub fn context(&self) -> &PickContext {
        &self.ctx
    }

    /// The runtime's range.
    pub fn runtime_range(&self) -> &Range {
        &self.range
    }

    /// The tree for the target (resolved, or a package-lock.json's,
    /// filtered for the target), with `runtime` chosen: the plan and the
    /// warnings.
    pub async fn finish(
        mut self,
        npm: &Npm,
        target: &Target,
        runtime: PlannedRuntime,
    ) -> Result<(PlannedNpm, Vec<String>), NpmError> {
        if runtime.kind == RuntimeKind::Node {
            self.ctx.node = runtime
                .version
                .as_deref()
                .and_then(|v| semver::Version::parse(v).ok());
        }
        let platform = Platform::of(target);
        let resolved = match &npm.tree {
            Some(locked) => from_lock(locked, platform)?,
            None => tree::build(&self.registry, &self.requests, &self.ctx, platform).await?,
        };
        Ok((
            PlannedNpm {
                registry: self.registry.base().to_string(),
                packages: npm.packages.clone(),
                runtime,
                binaries: npm.binaries.clone(),
                tree: resolved.tree,
                skipped: resolved.skipped,
                other_platforms: resolved.other_platforms,
                before: self.ctx.before,
            },
            resolved.warnings,
        ))
    }
}

/// A package-lock.json's tree for the target: optional packages for other
/// platforms (and what only they hold) left out; a required one refused.
fn from_lock(
    locked: &[crate::model::npm::LockedNpm],
    platform: Platform,
) -> Result<tree::Resolved, NpmError> {
    let mut out = tree::Resolved::default();
    let mut dropped: Vec<String> = Vec::new();
    for p in locked {
        if dropped.iter().any(|d| p.path.starts_with(&format!("{d}/"))) {
            out.other_platforms.push(p.clone());
            continue;
        }
        if let Some(why) = platform.refuses(&p.os, &p.cpu, &p.libc) {
            if !p.optional {
                return Err(NpmError::Platform {
                    package: format!("{}@{}", p.name, p.version),
                    required_by: "the package-lock.json".into(),
                    why,
                });
            }
            out.skipped.push(SkippedNpm {
                package: format!("{}@{}", p.name, p.version),
                reason: why,
            });
            dropped.push(p.path.clone());
            out.other_platforms.push(p.clone());
            continue;
        }
        out.tree.push(p.clone());
    }
    out.tree.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
