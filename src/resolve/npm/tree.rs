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
        "the packages asked for".into()
    } else {
        format!("{}@{}", nodes[n].name, nodes[n].version)
    }
}

/// Build the tree for `requests` (`name`, spec).
pub async fn build(
    registry: &Arc<Registry>,
    requests: &[(String, String)],
    ctx: &PickContext,
    platform: Platform,
) -> Result<Resolved, NpmError> {
    let mut nodes = vec![Node {
        name: String::new(),
        version: semver::Version::new(0, 0, 0),
        meta: VersionMeta::default(),
        parent: 0,
        children: BTreeMap::new(),
        path: String::new(),
        in_optional: false,
    }];
    let mut edges: Vec<Edge> = Vec::new();
    let mut out = Resolved::default();
    registry.prefetch(requests.iter().map(|(n, _)| n.clone()));
    let mut queue = BinaryHeap::from([Reverse((0usize, String::new(), 0usize))]);
    while let Some(Reverse((_, _, n))) = queue.pop() {
        let deps: BTreeMap<String, (String, Kind)> = if n == 0 {
            requests
                .iter()
                .map(|(name, spec)| (name.clone(), (spec.clone(), Kind::Prod)))
                .collect()
        } else {
            dependencies(&nodes[n].meta)
        };
        for (name, (spec, kind)) in deps {
            let optional = kind == Kind::Optional || nodes[n].in_optional;
            let mut skip = |reason: String| {
                out.skipped.push(SkippedNpm {
                    package: format!("{name}@{spec}"),
                    reason: format!("{reason} (an optional dependency of {})", label(&nodes, n)),
                })
            };
            let lookup = if kind == Kind::Peer {
                nodes[n].parent
            } else {
                n
            };
            let want = match Want::parse(&spec) {
                Ok(w) => w,
                Err(message) if optional => {
                    skip(message);
                    continue;
                }
                Err(message) => {
                    return Err(NpmError::BadDependency {
                        package: label(&nodes, n),
                        dependency: name,
                        message,
                    })
                }
            };
            if let Some(found) = find(&nodes, lookup, &name) {
                if fits(&want, &nodes[found].version) {
                    edges.push(Edge {
                        from: n,
                        lookup,
                        name,
                        want,
                        kind,
                        to: found,
                    });
                    continue;
                }
            }
            let packument = match registry.get(&name).await {
                Ok(p) => p,
                Err(e) if optional => {
                    skip(e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some((version, meta)) = pick(&packument, &want, ctx) else {
                if optional {
                    skip(format!("no version fits `{spec}`"));
                    continue;
                }
                return Err(NpmError::NoMatch {
                    package: name,
                    spec,
                    required_by: label(&nodes, n),
                    newest: newest(&packument, 5),
                    before: ctx.before.clone(),
                });
            };
            if let Some(why) = platform.refuses(&meta.os(), &meta.cpu(), &meta.libc()) {
                if optional {
                    out.skipped.push(SkippedNpm {
                        package: format!("{name}@{version}"),
                        reason: why,
                    });
                    continue;
                }
                return Err(NpmError::Platform {
                    package: format!("{name}@{version}"),
                    required_by: label(&nodes, n),
                    why,
                });
            }
            let mut best = None;
            let mut at = lookup;
            loop {
                if nodes[at].children.contains_key(&name)
                    || !shadow_ok(&nodes, &edges, at, &name, &version)
                {
                    break;
                }
                best = Some(at);
                if at == 0 {
                    break;
                }
                at = nodes[at].parent;
            }
            let Some(at) = best else {
                let have = find(&nodes, lookup, &name)
                    .map(|c| nodes[c].version.to_string())
                    .unwrap_or_default();
                out.warnings.push(format!(
                    "{} wants {name}@{spec} beside it (a peer dependency), but the tree has {name}@{have} there; it is left so (npm stops with ERESOLVE here unless --legacy-peer-deps)",
                    label(&nodes, n)
                ));
                continue;
            };
            let path = if at == 0 {
                format!("node_modules/{name}")
            } else {
                format!("{}/node_modules/{name}", nodes[at].path)
            };
            let depth = path.matches("node_modules/").count();
            let id = nodes.len();
            registry.prefetch(dependencies(meta).into_keys());
            nodes.push(Node {
                name: name.clone(),
                version,
                meta: meta.clone(),
                parent: at,
                children: BTreeMap::new(),
                path: path.clone(),
                in_optional: optional,
            });
            nodes[at].children.insert(name.clone(), id);
            edges.push(Edge {
                from: n,
                lookup,
                name,
                want,
                kind,
                to: id,
            });
            queue.push(Reverse((depth, path, id)));
        }
    }
    let optional = reached_without(&edges, Kind::Optional);
    let peer = reached_without(&edges, Kind::Peer);
    for (id, node) in nodes.iter().enumerate().skip(1) {
        let integrity = integrity_of(node, &mut out.warnings)?;
        let url = &node.meta.dist.tarball;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(NpmError::BadTarballUrl {
                package: format!("{}@{}", node.name, node.version),
                url: url.clone(),
            });
        }
        out.tree.push(LockedNpm {
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
    out.tree.sort_by(|a, b| a.path.cmp(&b.path));
    out.skipped.sort_by(|a, b| a.package.cmp(&b.package));
    out.skipped.dedup();
    Ok(out)
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
