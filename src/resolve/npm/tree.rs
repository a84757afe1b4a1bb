//! The `node_modules` tree, built as npm builds it: packages are taken in
//! order of depth then path; each dependency is met by the copy Node's
//! lookup would find from the dependent when that copy fits, else a new
//! copy is placed as high as it can go (hoisted) without changing what any
//! package placed earlier finds; peer dependencies are looked up and
//! placed from the dependent's parent; optional dependencies that have no
//! fitting version or are for another platform are left out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use crate::config::npm::Want;
use crate::model::integrity::{Algorithm, Integrity};
use crate::model::npm::{LockedNpm, SkippedNpm};

use super::packument::{Registry, VersionMeta};
use super::pick::{newest, pick, PickContext};
use super::platform::Platform;
use super::NpmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prod,
    Optional,
    Peer,
}

struct Node {
    name: String,
    version: semver::Version,
    meta: VersionMeta,
    parent: usize,
    children: BTreeMap<String, usize>,
    path: String,
    /// Placed for an optional dependency, or below one: a failure there
    /// leaves the package out instead of stopping.
    in_optional: bool,
    /// Made for another platform (an optional package the target's os,
    /// cpu or libc rules out): kept in the tree, as npm keeps it in its
    /// lock, but not installed.
    other_platform: bool,
}

struct Edge {
    from: usize,
    lookup: usize,
    name: String,
    want: Want,
    kind: Kind,
    to: usize,
}

/// The tree, with what was left out and what the user should know.
#[derive(Debug, Default)]
pub struct Resolved {
    pub tree: Vec<LockedNpm>,
    /// In the lock, not installed: optional packages for other platforms,
    /// and what only they need.
    pub other_platforms: Vec<LockedNpm>,
    pub skipped: Vec<SkippedNpm>,
    pub warnings: Vec<String>,
}

/// A node's dependencies, by name: optional ones over plain ones, and peer
/// dependencies (not those marked optional) that are neither.
fn dependencies(meta: &VersionMeta) -> BTreeMap<String, (String, Kind)> {
    let mut out: BTreeMap<String, (String, Kind)> = BTreeMap::new();
    for (n, r) in &meta.peer_dependencies {
        if !meta
            .peer_dependencies_meta
            .get(n)
            .is_some_and(|m| m.optional)
        {
            out.insert(n.clone(), (r.clone(), Kind::Peer));
        }
    }
    for (n, r) in &meta.dependencies {
        out.insert(n.clone(), (r.clone(), Kind::Prod));
    }
    for (n, r) in &meta.optional_dependencies {
        out.insert(n.clone(), (r.clone(), Kind::Optional));
    }
    out
}

fn fits(want: &Want, v: &semver::Version) -> bool {
    match want {
        Want::Range(r) => r.matches(v),
        // A tag names whatever the registry tags now: a copy is taken as is.
        Want::Tag(_) => true,
    }
}

/// Whether `a` is `b` or one of its ancestors.
fn ancestor_or_self(nodes: &[Node], a: usize, mut b: usize) -> bool {
    loop {
        if a == b {
            return true;
        }
        if b == 0 {
            return false;
        }
        b = nodes[b].parent;
    }
}

/// The copy of `name` Node's lookup finds from `from`.
fn find(nodes: &[Node], mut from: usize, name: &str) -> Option<usize> {
    loop {
        if let Some(&c) = nodes[from].children.get(name) {
            return Some(c);
        }
        if from == 0 {
            return None;
        }
        from = nodes[from].parent;
    }
}

/// Whether a copy of `name` at `v` placed in `at` leaves every earlier
/// lookup that would now find it satisfied.
fn shadow_ok(nodes: &[Node], edges: &[Edge], at: usize, name: &str, v: &semver::Version) -> bool {
    edges.iter().filter(|e| e.name == name).all(|e| {
        let now_finds_new = ancestor_or_self(nodes, at, e.lookup)
            && ancestor_or_self(nodes, nodes[e.to].parent, at);
        !now_finds_new || fits(&e.want, v)
    })
}

fn label(nodes: &[Node], n: usize) -> String {
    if n == 0 {
        "the request".into()
    } else {
        format!("{}@{}", nodes[n].name, nodes[n].version)
    }
}

/// The tree as it grows.
struct Builder<'a> {
    registry: &'a Arc<Registry>,
    ctx: &'a PickContext,
    platform: Platform,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    out: Resolved,
    /// Nodes whose dependencies are still to be met, by depth and path.
    queue: BinaryHeap<Reverse<(usize, String, usize)>>,
}

/// A version picked for a dependency that no copy in the tree meets.
struct Picked {
    version: semver::Version,
    meta: VersionMeta,
    other_platform: bool,
}

/// Build the tree for `requests` (`name`, spec).
pub async fn build(
    registry: &Arc<Registry>,
    requests: &[(String, String)],
    ctx: &PickContext,
    platform: Platform,
) -> Result<Resolved, NpmError> {
    let mut b = Builder {
        registry,
        ctx,
        platform,
        nodes: vec![Node {
            name: String::new(),
            version: semver::Version::new(0, 0, 0),
            meta: VersionMeta::default(),
            parent: 0,
            children: BTreeMap::new(),
            path: String::new(),
            in_optional: false,
            other_platform: false,
        }],
        edges: Vec::new(),
        out: Resolved::default(),
        queue: BinaryHeap::from([Reverse((0usize, String::new(), 0usize))]),
    };
    registry.prefetch(requests.iter().map(|(n, _)| n.clone()));
    while let Some(Reverse((_, _, n))) = b.queue.pop() {
        let deps: BTreeMap<String, (String, Kind)> = if n == 0 {
            requests
                .iter()
                .map(|(name, spec)| (name.clone(), (spec.clone(), Kind::Prod)))
                .collect()
        } else {
            dependencies(&b.nodes[n].meta)
        };
        for (name, (spec, kind)) in deps {
            b.meet(n, name, spec, kind).await?;
        }
    }
    b.finish()
}

impl Builder<'_> {
    /// Leave out an optional dependency, saying why.
    fn skip(&mut self, n: usize, name: &str, spec: &str, reason: String) {
        self.out.skipped.push(SkippedNpm {
            package: format!("{name}@{spec}"),
            reason: format!(
                "{reason} (an optional dependency of {})",
                label(&self.nodes, n)
            ),
        });
    }

    /// Meet node `n`'s dependency `name@spec`: with the copy the lookup
    /// finds when it fits, else with a new copy placed as high as it can go.
    async fn meet(
        &mut self,
        n: usize,
        name: String,
        spec: String,
        kind: Kind,
    ) -> Result<(), NpmError> {
        let optional = kind == Kind::Optional || self.nodes[n].in_optional;
        let lookup = if kind == Kind::Peer {
            self.nodes[n].parent
        } else {
            n
        };
        let want = match Want::parse(&spec) {
            Ok(w) => w,
            Err(message) if optional => {
                self.skip(n, &name, &spec, message);
                return Ok(());
            }
            Err(message) => {
                return Err(NpmError::BadDependency {
                    package: label(&self.nodes, n),
                    dependency: name,
                    message,
                })
            }
        };
        if let Some(found) = find(&self.nodes, lookup, &name) {
            if fits(&want, &self.nodes[found].version) {
                if self.nodes[found].other_platform && !optional {
                    let meta = &self.nodes[found].meta;
                    return Err(NpmError::Platform {
                        package: format!("{name}@{}", self.nodes[found].version),
                        required_by: label(&self.nodes, n),
                        why: self
                            .platform
                            .refuses(&meta.os(), &meta.cpu(), &meta.libc())
                            .unwrap_or_default(),
                    });
                }
                self.edges.push(Edge {
                    from: n,
                    lookup,
                    name,
                    want,
                    kind,
                    to: found,
                });
                return Ok(());
            }
        }
        let Some(picked) = self.pick(n, &name, &spec, &want, optional).await? else {
            return Ok(());
        };
        let Some(at) = self.placement(lookup, &name, &picked.version) else {
            let have = find(&self.nodes, lookup, &name)
                .map(|c| self.nodes[c].version.to_string())
                .unwrap_or_default();
            self.out.warnings.push(format!(
                "{} wants {name}@{spec} beside it (a peer dependency), but the tree has {name}@{have} there; it is left so (npm stops with ERESOLVE here unless --legacy-peer-deps)",
                label(&self.nodes, n)
            ));
            return Ok(());
        };
        let path = if at == 0 {
            format!("node_modules/{name}")
        } else {
            format!("{}/node_modules/{name}", self.nodes[at].path)
        };
        let depth = path.matches("node_modules/").count();
        let id = self.nodes.len();
        self.registry
            .prefetch(dependencies(&picked.meta).into_keys());
        self.nodes.push(Node {
            name: name.clone(),
            version: picked.version,
            meta: picked.meta,
            parent: at,
            children: BTreeMap::new(),
            path: path.clone(),
            in_optional: optional,
            other_platform: picked.other_platform,
        });
        self.nodes[at].children.insert(name.clone(), id);
        self.edges.push(Edge {
            from: n,
            lookup,
            name,
            want,
            kind,
            to: id,
        });
        self.queue.push(Reverse((depth, path, id)));
        Ok(())
    }

    /// The version for `want`, for the target's platform; None when an
    /// optional dependency is left out.
    async fn pick(
        &mut self,
        n: usize,
        name: &str,
        spec: &str,
        want: &Want,
        optional: bool,
    ) -> Result<Option<Picked>, NpmError> {
        let packument = match self.registry.get(name).await {
            Ok(p) => p,
            Err(e) if optional => {
                self.skip(n, name, spec, e.to_string());
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let Some((version, meta)) = pick(&packument, want, self.ctx) else {
            if optional {
                self.skip(n, name, spec, format!("no version fits `{spec}`"));
                return Ok(None);
            }
            return Err(NpmError::NoMatch {
                package: name.to_string(),
                spec: spec.to_string(),
                required_by: label(&self.nodes, n),
                newest: newest(&packument, 5),
                before: self.ctx.before.clone(),
            });
        };
        let refused = self.platform.refuses(&meta.os(), &meta.cpu(), &meta.libc());
        if let Some(why) = &refused {
            if !optional {
                return Err(NpmError::Platform {
                    package: format!("{name}@{version}"),
                    required_by: label(&self.nodes, n),
                    why: why.clone(),
                });
            }
            self.out.skipped.push(SkippedNpm {
                package: format!("{name}@{version}"),
                reason: why.clone(),
            });
        }
        Ok(Some(Picked {
            version,
            meta: meta.clone(),
            other_platform: refused.is_some(),
        }))
    }

    /// The highest node from `lookup` up where a new copy of `name` at `v`
    /// can go: below any copy of that name, and changing no earlier
    /// lookup's answer to one that does not fit.
    fn placement(&self, lookup: usize, name: &str, v: &semver::Version) -> Option<usize> {
        let mut best = None;
        let mut at = lookup;
        loop {
            if self.nodes[at].children.contains_key(name)
                || !shadow_ok(&self.nodes, &self.edges, at, name, v)
            {
                return best;
            }
            best = Some(at);
            if at == 0 {
                return best;
            }
            at = self.nodes[at].parent;
        }
    }

    /// The tree as locked packages, sorted by path: those installed, and
    /// those only for other platforms (with what only they need).
    fn finish(mut self) -> Result<Resolved, NpmError> {
        let optional = reached_without(&self.edges, Kind::Optional);
        let peer = reached_without(&self.edges, Kind::Peer);
        let installed = self.installed();
        for (id, node) in self.nodes.iter().enumerate().skip(1) {
            let integrity = integrity_of(node, &mut self.out.warnings)?;
            let url = &node.meta.dist.tarball;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(NpmError::BadTarballUrl {
                    package: format!("{}@{}", node.name, node.version),
                    url: url.clone(),
                });
            }
            let list = if installed.contains(&id) {
                &mut self.out.tree
            } else {
                &mut self.out.other_platforms
            };
            list.push(LockedNpm {
                path: node.path.clone(),
                name: node.name.clone(),
                version: node.version.to_string(),
                resolved: url.clone(),
                integrity,
                bin: node.meta.bin(&node.name),
                dependencies: node.meta.dependencies.clone(),
                optional_dependencies: node.meta.optional_dependencies.clone(),
                peer_dependencies: node.meta.peer_dependencies.clone(),
                optional: !optional.contains(&id),
                peer: !peer.contains(&id),
                has_install_script: node.meta.has_install_script,
                os: node.meta.os(),
                cpu: node.meta.cpu(),
                libc: node.meta.libc(),
                engines: node.meta.engines.clone(),
            });
        }
        self.out.tree.sort_by(|a, b| a.path.cmp(&b.path));
        self.out.other_platforms.sort_by(|a, b| a.path.cmp(&b.path));
        self.out.skipped.sort_by(|a, b| a.package.cmp(&b.package));
        self.out.skipped.dedup();
        Ok(self.out)
    }

    /// The nodes installed: reached from the root without passing through
    /// a package for another platform.
    fn installed(&self) -> BTreeSet<usize> {
        let mut seen = BTreeSet::from([0usize]);
        let mut todo = vec![0usize];
        while let Some(n) = todo.pop() {
            for e in self.edges.iter().filter(|e| e.from == n) {
                if !self.nodes[e.to].other_platform && seen.insert(e.to) {
                    todo.push(e.to);
                }
            }
        }
        seen
    }
}

/// The nodes reached from the root without following edges of `kind`.
fn reached_without(edges: &[Edge], kind: Kind) -> BTreeSet<usize> {
    let mut seen = BTreeSet::from([0usize]);
    let mut todo = vec![0usize];
    while let Some(n) = todo.pop() {
        for e in edges.iter().filter(|e| e.from == n && e.kind != kind) {
            if seen.insert(e.to) {
                todo.push(e.to);
            }
        }
    }
    seen
}

/// A node's integrity: sha512 from `dist.integrity`, else the sha1
/// `shasum`, with a warning.
fn integrity_of(node: &Node, warnings: &mut Vec<String>) -> Result<Integrity, NpmError> {
    let package = format!("{}@{}", node.name, node.version);
    let dist = &node.meta.dist;
    if let Some(text) = &dist.integrity {
        let i = Integrity::parse(text).map_err(|e| NpmError::BadIntegrity {
            package: package.clone(),
            message: e.to_string(),
        })?;
        if i.algorithm() == Algorithm::Sha1 {
            warnings.push(format!("{package}: the registry gives only a sha1 integrity; it is checked, but sha1 is weak"));
        }
        return Ok(i);
    }
    match &dist.shasum {
        Some(sum) => {
            let i = Integrity::from_shasum(sum).map_err(|e| NpmError::BadIntegrity {
                package: package.clone(),
                message: e.to_string(),
            })?;
            warnings.push(format!(
                "{package}: the registry gives only a sha1 shasum (published before sha512 integrity); it is checked, but sha1 is weak"
            ));
            Ok(i)
        }
        None => Err(NpmError::BadIntegrity {
            package,
            message: "the registry gives neither an integrity nor a shasum".into(),
        }),
    }
}
