//! The bundle's `package.json` (what was asked for) and `package-lock.json`
//! (lockfileVersion 3: every package of `node_modules`, where it is, its
//! version, tarball and integrity), as npm writes them, so that `npm ci`
//! accepts the pair and other tools can read the tree.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::model::npm::{spec_name, PlannedNpm};

/// The root project's name: the bundle's, made a valid npm name.
fn root_name(bundle: &str) -> String {
    let name: String = bundle
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches(['.', '_', '-']).to_string();
    if name.is_empty() {
        "bundle".into()
    } else {
        name
    }
}

/// What was asked for, as package.json's `dependencies`: ranges as
/// written; a dist-tag as `^` the version it gave.
fn dependencies(planned: &PlannedNpm) -> BTreeMap<String, String> {
    planned
        .packages
        .iter()
        .map(|p| {
            let name = spec_name(p);
            let spec = p[name.len()..].strip_prefix('@').unwrap_or("");
            let is_range = !spec.is_empty() && crate::config::npm::Range::parse(spec).is_ok();
            let spec = if is_range {
                spec.to_string()
            } else {
                let top = format!("node_modules/{name}");
                planned
                    .tree
                    .iter()
                    .find(|t| t.path == top)
                    .map_or_else(|| "*".to_string(), |t| format!("^{}", t.version))
            };
            (name.to_string(), spec)
        })
        .collect()
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("JSON serializes");
    s.push('\n');
    s
}

/// `package.json`: a private project depending on what was asked for.
pub fn package_json(planned: &PlannedNpm, bundle: &str) -> String {
    pretty(&json!({
        "name": root_name(bundle),
        "private": true,
        "dependencies": dependencies(planned),
    }))
}

/// `package-lock.json`, lockfileVersion 3.
pub fn package_lock(planned: &PlannedNpm, bundle: &str) -> String {
    let mut packages = Map::new();
    packages.insert(
        String::new(),
        json!({"name": root_name(bundle), "dependencies": dependencies(planned)}),
    );
    for p in planned.tree.iter().chain(&planned.other_platforms) {
        let mut e = Map::new();
        e.insert("version".into(), json!(p.version));
        e.insert("resolved".into(), json!(p.resolved));
        e.insert("integrity".into(), json!(p.integrity.to_string()));
        let maps = [
            ("bin", &p.bin),
            ("dependencies", &p.dependencies),
            ("optionalDependencies", &p.optional_dependencies),
            ("peerDependencies", &p.peer_dependencies),
            ("engines", &p.engines),
        ];
        for (key, map) in maps {
            if !map.is_empty() {
                e.insert(key.into(), json!(map));
            }
        }
        for (key, list) in [("os", &p.os), ("cpu", &p.cpu), ("libc", &p.libc)] {
            if !list.is_empty() {
                e.insert(key.into(), json!(list));
            }
        }
        for (key, set) in [
            ("optional", p.optional),
            ("peer", p.peer),
            ("hasInstallScript", p.has_install_script),
        ] {
            if set {
                e.insert(key.into(), json!(true));
            }
        }
        if p.path != format!("node_modules/{}", p.name)
            && !p.path.ends_with(&format!("/node_modules/{}", p.name))
        {
            e.insert("name".into(), json!(p.name));
        }
        packages.insert(p.path.clone(), Value::Object(e));
    }
    pretty(&json!({
        "name": root_name(bundle),
        "lockfileVersion": 3,
        "requires": true,
        "packages": Value::Object(packages),
    }))
}
