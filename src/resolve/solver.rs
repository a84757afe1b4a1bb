//! PubGrub resolution of PyPI requirements for a target machine.
//!
//! Packages preinstalled on the target are fixed facts: a virtual package
//! (the target) pins each of them, so a conflict is explained in terms of
//! what the target has. Index pages and metadata are fetched in parallel
//! ahead of the solver, which runs on a blocking thread.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use std::sync::{Arc, Mutex};

use pep440_rs::Version;
use pep508_rs::{
    ExtraName, MarkerEnvironment, PackageName, Requirement, VerbatimUrl, VersionOrUrl,
};
use pubgrub::{
    DependencyConstraints, DependencyProvider, PackageResolutionStatistics, PubGrubError,
};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::config::target::Target;
use crate::resolve::index::{Index, WheelFile};

pub use super::error::ResolveError;
pub use super::graph::Pkg;
pub(crate) use super::graph::Range;
use super::report::no_solution;

/// A package chosen for the bundle.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub name: PackageName,
    pub version: Version,
    pub wheel: WheelFile,
}

/// A needed package the target already has.
#[derive(Debug, Clone)]
pub struct Excluded {
    pub name: PackageName,
    pub version: Version,
}

#[derive(Debug, Clone)]
pub struct Resolution {
    pub packages: Vec<Resolved>,
    pub excluded: Vec<Excluded>,
}

#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// Let the bundle carry other versions of preinstalled packages.
    pub upgrade_preinstalled: bool,
    /// Version limits on packages that get installed, not requirements
    /// (`-c FILE`): each narrows every dependency on its package.
    pub constraints: Vec<Requirement<VerbatimUrl>>,
    /// Download each chosen wheel into the cache as soon as its version is
    /// decided (for a build, whose fetch stage then finds it there).
    pub fetch_ahead: bool,
}

/// Which packages (with extras) each chosen package version asked for.
type Edges = HashMap<(Pkg, Version), Vec<(PackageName, Vec<ExtraName>)>>;

struct Provider {
    /// The index, the runtime and the target, shared with the read-ahead.
    shared: Arc<Shared>,
    target: String,
    root: Vec<Requirement<VerbatimUrl>>,
    explicit_pre: HashSet<PackageName>,
    order: Mutex<HashMap<PackageName, usize>>,
    edges: Mutex<Edges>,
    fetch_ahead: bool,
    cancel: CancellationToken,
}

/// What the solver and its read-ahead both use. The read-ahead
/// ([`Shared::prefetch`]) reads a project's page, its newest wheel's
/// metadata, then the same for each of that wheel's dependencies, so that
/// the index is read at the network's pace rather than one dependency
/// level per solver step.
struct Shared {
    index: Arc<Index>,
    rt: Handle,
    env: MarkerEnvironment,
    preinstalled: BTreeMap<PackageName, Version>,
    upgrade: bool,
    /// `-c` constraints by package.
    limits: HashMap<PackageName, Range>,
    /// Packages, and packages' extras, already read ahead.
    seen: Mutex<HashSet<(PackageName, Option<ExtraName>)>>,
}

impl Shared {
    fn new(
        index: &Arc<Index>,
        env: &MarkerEnvironment,
        target: &Target,
        options: &ResolveOptions,
        limits: HashMap<PackageName, Range>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            index: index.clone(),
            rt: Handle::current(),
            env: env.clone(),
            preinstalled: target.preinstalled.clone(),
            upgrade: options.upgrade_preinstalled,
            limits,
            seen: Mutex::new(HashSet::new()),
        })
    }

    /// Read `req`'s package ahead: its page, then the dependencies of the
    /// newest wheel that `req` and the `-c` constraints allow, including
    /// what each of its extras adds (an extra asked for later is read
    /// then). The first requirement seen for a package picks that version.
    fn prefetch(self: &Arc<Self>, req: &Requirement<VerbatimUrl>) {
        let (name, extras) = (&req.name, &req.extras);
        if !self.upgrade && self.preinstalled.contains_key(name) {
            return;
        }
        let new: Vec<Option<ExtraName>> = {
            let mut seen = self.seen.lock().expect("poisoned");
            std::iter::once(None)
                .chain(extras.iter().cloned().map(Some))
                .filter(|extra| seen.insert((name.clone(), extra.clone())))
                .collect()
        };
        if new.is_empty() {
            return;
        }
        let mut allowed = to_range(req).unwrap_or_else(|_| Range::full());
        if let Some(limit) = self.limits.get(name) {
            allowed = allowed.intersection(limit);
        }
        let (ahead, name) = (self.clone(), name.clone());
        self.rt.spawn(async move {
            let Ok(project) = ahead.index.project(&name).await else {
                return;
            };
            let newest = project.candidates.values().rev().find(|c| {
                c.version.is_stable() && c.yanked().is_none() && allowed.contains(&c.version)
            });
            // An sdist's metadata means a build: only when chosen.
            let Some(c) = newest.filter(|c| !c.wheel.sdist) else {
                return;
            };
            let Ok(meta) = ahead.index.metadata(&c.wheel).await else {
                return;
            };
            for extra in new {
                let extras: Vec<ExtraName> = extra.into_iter().collect();
                for r in meta
                    .requires_dist
                    .iter()
                    .filter(|r| r.evaluate_markers(&ahead.env, &extras))
                {
                    ahead.prefetch(r);
                }
            }
        });
    }
}

/// The version range a requirement allows; a URL requirement is refused
/// with the reason.
fn to_range(req: &Requirement<VerbatimUrl>) -> Result<Range, String> {
    match &req.version_or_url {
        None => Ok(Range::full()),
        Some(VersionOrUrl::VersionSpecifier(spec)) => Ok(Range::from(spec.clone())),
        Some(VersionOrUrl::Url(url)) => Err(format!(
            "`{req}` names a URL ({url}), which only a requirement of your own may do, not a constraint or a package's dependency"
        )),
    }
}

fn mentions_prerelease(req: &Requirement<VerbatimUrl>) -> bool {
    matches!(&req.version_or_url, Some(VersionOrUrl::VersionSpecifier(s)) if s.iter().any(|s| s.any_prerelease()))
}

impl Provider {
    /// Wait, on the resolver's thread, for `work` of the runtime (a page or
    /// metadata), or for the run to be cancelled, whichever comes first. The
    /// runtime shuts down soon after a cancel (Ctrl-C, SIGTERM), and work
    /// still waiting on its network or timers then would panic.
    fn wait<F: std::future::Future>(&self, work: F) -> Result<F::Output, ResolveError> {
        self.shared.rt.block_on(async {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => Err(ResolveError::Cancelled),
                r = work => Ok(r),
            }
        })
    }

    fn is_fixed(&self, name: &PackageName) -> Option<&Version> {
        self.shared.preinstalled.get(name)
    }

    fn see(&self, name: &PackageName) {
        let mut order = self.order.lock().expect("poisoned");
        let n = order.len();
        order.entry(name.clone()).or_insert(n);
    }

    /// Start reading a project, and what its newest wheel needs, ahead.
    fn prefetch(&self, req: &Requirement<VerbatimUrl>) {
        self.shared.prefetch(req);
    }

    fn constraints(
        &self,
        from: (&Pkg, &Version),
        reqs: impl Iterator<Item = Requirement<VerbatimUrl>>,
        skip_self: Option<&PackageName>,
    ) -> Result<Vec<(Pkg, Range)>, ResolveError> {
        let mut merged: BTreeMap<String, (Pkg, Range)> = BTreeMap::new();
        // The request's own requirements by package, as written, so that two
        // that contradict each other are quoted rather than merged into an
        // empty range.
        let mut asked: BTreeMap<PackageName, Vec<String>> = BTreeMap::new();
        let mut edges = Vec::new();
        for req in reqs {
            // A URL in the user's request is bad input; in a package's
            // metadata it is a failure of that package.
            // (A URL the request names was made that project's only file.)
            let direct = matches!(from.0, Pkg::Root)
                && matches!(req.version_or_url, Some(VersionOrUrl::Url(_)))
                && self.shared.index.is_direct(&req.name);
            let range = if direct {
                Ok(Range::full())
            } else {
                to_range(&req)
            };
            let range = range.map_err(|m| match from.0 {
                Pkg::Root => ResolveError::Unsupported(m),
                _ => ResolveError::Failed(format!("{} {} depends on {m}", from.0, from.1)),
            })?;
            self.see(&req.name);
            self.prefetch(&req);
            edges.push((req.name.clone(), req.extras.clone()));
            let mut nodes = Vec::new();
            if skip_self != Some(&req.name) {
                nodes.push(Pkg::Name(req.name.clone()));
            }
            for extra in &req.extras {
                nodes.push(Pkg::Extra(req.name.clone(), extra.clone()));
            }
            let limited = self.shared.limits.get(&req.name);
            let range = match limited {
                Some(limit) => range.intersection(limit),
                None => range,
            };
            if matches!(from.0, Pkg::Root) {
                let quoted = asked.entry(req.name.clone()).or_default();
                quoted.push(format!("`{req}`"));
                let so_far = merged
                    .get(&Pkg::Name(req.name.clone()).to_string())
                    .map_or_else(Range::full, |(_, r)| r.clone());
                if range == Range::empty() || so_far.intersection(&range) == Range::empty() {
                    let with_c = if limited.is_some() {
                        " (with the -c constraints)"
                    } else {
                        ""
                    };
                    return Err(ResolveError::Conflict(format!(
                        "the requirements {} conflict{with_c}: no version of {} satisfies them all",
                        quoted.join(" and "),
                        req.name
                    )));
                }
            }
            for node in nodes {
                let key = node.to_string();
                match merged.get_mut(&key) {
                    Some((_, r)) => *r = r.intersection(&range),
                    None => {
                        merged.insert(key, (node, range.clone()));
                    }
                }
            }
        }
        self.edges
            .lock()
            .expect("poisoned")
            .insert((from.0.clone(), from.1.clone()), edges);
        Ok(merged.into_values().collect())
    }

    fn wheel_for(&self, name: &PackageName, version: &Version) -> Result<WheelFile, ResolveError> {
        let project = self
            .wait(self.shared.index.project(name))?
            .map_err(ResolveError::Index)?;
        project
            .candidates
            .get(version)
            .map(|c| c.wheel.clone())
            .ok_or_else(|| {
                ResolveError::Failed(format!("{name} {version} vanished from the index"))
            })
    }
}

impl DependencyProvider for Provider {
    type P = Pkg;
    type V = Version;
    type VS = Range;
    type M = String;
    type Priority = (u8, u32, Reverse<usize>);
    type Err = ResolveError;

    fn prioritize(
        &self,
        package: &Pkg,
        range: &Range,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        let (kind, name) = match package {
            Pkg::Root => return (4, 0, Reverse(0)),
            Pkg::Target(_) => return (3, 0, Reverse(0)),
            Pkg::Name(n) => (if range.as_singleton().is_some() { 2 } else { 1 }, n),
            Pkg::Extra(n, _) => (0, n),
        };
        let seen = self
            .order
            .lock()
            .expect("poisoned")
            .get(name)
            .copied()
            .unwrap_or(usize::MAX);
        (kind, stats.conflict_count(), Reverse(seen))
    }

    fn choose_version(
        &self,
        package: &Pkg,
        range: &Range,
    ) -> Result<Option<Version>, ResolveError> {
        self.should_cancel()?;
        let name = match package {
            Pkg::Root | Pkg::Target(_) => {
                let v = Version::new([0]);
                return Ok(range.contains(&v).then_some(v));
            }
            Pkg::Name(n) | Pkg::Extra(n, _) => n,
        };
        if let Some(v) = self.is_fixed(name) {
            if !self.shared.upgrade || range.contains(v) {
                return Ok(range.contains(v).then(|| v.clone()));
            }
        }
        let project = self
            .wait(self.shared.index.project(name))?
            .map_err(ResolveError::Index)?;
        let pinned = range.as_singleton();
        let allow_pre = self.explicit_pre.contains(name)
            || pinned.is_some_and(|v| v.any_prerelease())
            || project.candidates.keys().all(|v| v.any_prerelease());
        let chosen = project
            .candidates
            .values()
            .rev()
            .filter(|c| range.contains(&c.version))
            .filter(|c| c.yanked().is_none() || pinned == Some(&c.version))
            .find(|c| allow_pre || !c.version.any_prerelease())
            .map(|c| c.version.clone());
        Ok(chosen)
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<pubgrub::Dependencies<Pkg, Range, String>, ResolveError> {
        self.should_cancel()?;
        let deps: Vec<(Pkg, Range)> = match package {
            Pkg::Root => {
                let mut d =
                    self.constraints((package, version), self.root.iter().cloned(), None)?;
                if !self.shared.upgrade && !self.shared.preinstalled.is_empty() {
                    d.push((Pkg::Target(self.target.clone()), Range::full()));
                }
                d
            }
            Pkg::Target(_) => self
                .shared
                .preinstalled
                .iter()
                .map(|(n, v)| (Pkg::Name(n.clone()), Range::singleton(v.clone())))
                .collect(),
            Pkg::Name(n) => {
                if self.is_fixed(n) == Some(version) {
                    Vec::new()
                } else {
                    let wheel = self.wheel_for(n, version)?;
                    let meta = self
                        .wait(self.shared.index.metadata(&wheel))?
                        .map_err(ResolveError::Index)?;
                    // After the metadata: when reading it meant downloading
                    // the whole wheel, the download finds it in the cache.
                    if self.fetch_ahead {
                        let _in_runtime = self.shared.rt.enter();
                        self.shared.index.fetch_ahead(&wheel);
                    }
                    // Mirrors may omit `requires-python` from the index;
                    // the metadata still has it.
                    if let Some(rp) = meta.requires_python.as_deref() {
                        let python = &self.shared.env.python_full_version().version;
                        if crate::resolve::index::python_excluded(rp, python) {
                            return Ok(pubgrub::Dependencies::Unavailable(format!(
                                "because it requires Python {rp} (target has {python})"
                            )));
                        }
                    }
                    let reqs = meta
                        .requires_dist
                        .iter()
                        .filter(|r| r.evaluate_markers(&self.shared.env, &[]))
                        .cloned();
                    self.constraints((package, version), reqs, Some(n))?
                }
            }
            Pkg::Extra(n, extra) => {
                let mut d = vec![(Pkg::Name(n.clone()), Range::singleton(version.clone()))];
                let wheel = self.wheel_for(n, version)?;
                let meta = self
                    .wait(self.shared.index.metadata(&wheel))?
                    .map_err(ResolveError::Index)?;
                if !meta.provides_extra.is_empty() && !meta.provides_extra.contains(extra) {
                    self.shared.index.reporter().warn(&format!(
                        "{n} {version} does not provide the extra `{extra}`"
                    ));
                }
                let extras = std::slice::from_ref(extra);
                let reqs = meta
                    .requires_dist
                    .iter()
                    .filter(|r| {
                        r.evaluate_markers(&self.shared.env, extras)
                            && !r.evaluate_markers(&self.shared.env, &[])
                    })
                    .cloned();
                let mut own = self.constraints((package, version), reqs, Some(n))?;
                d.append(&mut own);
                d
            }
        };
        Ok(pubgrub::Dependencies::Available(
            deps.into_iter().collect::<DependencyConstraints<_, _>>(),
        ))
    }

    fn should_cancel(&self) -> Result<(), ResolveError> {
        if self.cancel.is_cancelled() {
            Err(ResolveError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Resolve `requirements` for `target`. Markers are evaluated for the target.
pub async fn resolve(
    index: Arc<Index>,
    target: &Target,
    requirements: Vec<Requirement<VerbatimUrl>>,
    options: &ResolveOptions,
    cancel: CancellationToken,
) -> Result<Resolution, ResolveError> {
    let env = target.marker_env();
    let root: Vec<_> = requirements
        .into_iter()
        .filter(|r| r.evaluate_markers(&env, &[]))
        .collect();
    let explicit_pre = root
        .iter()
        .filter(|r| mentions_prerelease(r))
        .map(|r| r.name.clone())
        .collect();
    let mut limits: HashMap<PackageName, Range> = HashMap::new();
    for c in options
        .constraints
        .iter()
        .filter(|c| c.evaluate_markers(&env, &[]))
    {
        let range = to_range(c).map_err(ResolveError::Unsupported)?;
        let entry = limits.entry(c.name.clone()).or_insert_with(Range::full);
        *entry = entry.intersection(&range);
    }
    let provider = Arc::new(Provider {
        shared: Shared::new(&index, &env, target, options, limits),
        target: target.name.clone(),
        root,
        explicit_pre,
        order: Mutex::new(HashMap::new()),
        edges: Mutex::new(HashMap::new()),
        fetch_ahead: options.fetch_ahead,
        cancel,
    });
    for r in &provider.root {
        provider.see(&r.name);
        provider.prefetch(r);
    }
    let p = provider.clone();
    let result = tokio::task::spawn_blocking(move || {
        pubgrub::resolve(p.as_ref(), Pkg::Root, Version::new([0])).map_err(Box::new)
    })
    .await
    .expect("resolver thread panicked");
    let solution = match result.map_err(|e| *e) {
        Ok(s) => s,
        Err(PubGrubError::NoSolution(tree)) => {
            return Err(no_solution(tree, &index, target).await);
        }
        Err(PubGrubError::ErrorChoosingVersion { source, .. })
        | Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
        | Err(PubGrubError::ErrorInShouldCancel(source)) => {
            // The provider's own errors are already the resolver's.
            return Err(source);
        }
    };
    let versions: HashMap<Pkg, Version> = solution.into_iter().collect();
    let edges = provider.edges.lock().expect("poisoned").clone();
    let seen = reachable(&versions, &edges);
    let mut packages = Vec::new();
    let mut excluded = Vec::new();
    for name in seen {
        let Some(version) = versions.get(&Pkg::Name(name.clone())).cloned() else {
            continue;
        };
        if target.preinstalled.get(&name) == Some(&version) {
            excluded.push(Excluded { name, version });
            continue;
        }
        let project = index.project(&name).await.map_err(ResolveError::Index)?;
        let wheel = project
            .candidates
            .get(&version)
            .map(|c| c.wheel.clone())
            .ok_or_else(|| ResolveError::Failed(format!("{name} {version} has no wheel")))?;
        packages.push(Resolved {
            name,
            version,
            wheel,
        });
    }
    Ok(Resolution { packages, excluded })
}

/// The packages the request reaches through the recorded edges of the
/// chosen versions.
fn reachable(versions: &HashMap<Pkg, Version>, edges: &Edges) -> BTreeSet<PackageName> {
    let mut seen: BTreeSet<PackageName> = BTreeSet::new();
    let mut queue: VecDeque<Pkg> = VecDeque::from([Pkg::Root]);
    let mut visited: HashSet<Pkg> = HashSet::new();
    while let Some(node) = queue.pop_front() {
        if !visited.insert(node.clone()) {
            continue;
        }
        let Some(v) = versions.get(&node) else {
            continue;
        };
        for (dep, extras) in edges.get(&(node.clone(), v.clone())).into_iter().flatten() {
            seen.insert(dep.clone());
            queue.push_back(Pkg::Name(dep.clone()));
            for e in extras {
                queue.push_back(Pkg::Extra(dep.clone(), e.clone()));
            }
        }
    }
    seen
}

/// Resolve `requirements` for `target` as if nothing were installed there
/// yet, with wheels only: for build environments and for the packages a
/// verify sandbox must be given. Errors are returned as text.
pub async fn resolve_standalone(
    index_url: &str,
    fetcher: Arc<crate::fetch::Fetcher>,
    target: &Target,
    requirements: Vec<Requirement<VerbatimUrl>>,
) -> Result<Resolution, String> {
    let mut empty = target.clone();
    empty.preinstalled.clear();
    let index = Index::new(index_url, fetcher, &empty, None).map_err(|e| e.to_string())?;
    resolve(
        Arc::new(index),
        &empty,
        requirements,
        &ResolveOptions::default(),
        CancellationToken::new(),
    )
    .await
    .map_err(|e| e.to_string())
}
