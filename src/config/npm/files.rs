//! `package.json` and `package-lock.json` as inputs: the dependencies of
//! the one, the tree the other pins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::spec::{parse_spec, valid_name};
use crate::model::integrity::Integrity;
use crate::model::npm::LockedNpm;

/// What `package.json` and `package-lock.json` give.
#[derive(Debug, Clone, Default)]
pub struct NpmFile {
    /// The project's name (`name`), when it has one.
    pub name: Option<String>,
    /// `name@range` of its dependencies (and optional dependencies).
    pub packages: Vec<String>,
    /// The tree a lock pins (None for a package.json).
    pub tree: Option<Vec<LockedNpm>>,
}

/// Why an npm input file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct NpmFileError {
    pub file: String,
    pub message: String,
}

#[derive(Deserialize)]
struct PackageJson {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    dependencies: BTreeMap<String, String>,
    #[serde(default, rename = "optionalDependencies")]
    optional_dependencies: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    lockfile_version: u32,
    #[serde(default)]
    packages: BTreeMap<String, LockEntry>,
}

/// `os`, `cpu`, `libc`: a string or a list of them.
#[derive(Deserialize, Default, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `bin`: a path (named after the package) or a map.
#[derive(Deserialize, Default, Clone)]
#[serde(untagged)]
pub enum Bin {
    #[default]
    None,
    One(String),
    Many(BTreeMap<String, String>),
}

impl Bin {
    /// Program names to scripts; a lone path is named after the package
    /// (its scope dropped).
    pub fn into_map(self, package: &str) -> BTreeMap<String, String> {
        match self {
            Bin::None => BTreeMap::new(),
            Bin::One(path) => {
                let name = package.rsplit('/').next().unwrap_or(package);
                BTreeMap::from([(name.to_string(), path)])
            }
            Bin::Many(m) => m,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockEntry {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    resolved: Option<String>,
    #[serde(default)]
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    dev_optional: bool,
    #[serde(default)]
    peer: bool,
    #[serde(default)]
    in_bundle: bool,
    #[serde(default)]
    has_install_script: bool,
    #[serde(default)]
    bin: Bin,
    #[serde(default)]
    dependencies: BTreeMap<String, String>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    peer_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    os: OneOrMany,
    #[serde(default)]
    cpu: OneOrMany,
    #[serde(default)]
    libc: OneOrMany,
    #[serde(default)]
    engines: Option<serde_json::Value>,
}

/// The npm input file an argument names: a `package.json` or
/// `package-lock.json`, or a folder that has one (its lock first) and no
/// pyproject.toml.
pub fn npm_file(arg: &str) -> Option<PathBuf> {
    let path = Path::new(arg);
    let name = path.file_name().and_then(|n| n.to_str());
    if matches!(name, Some("package.json" | "package-lock.json")) && path.is_file() {
        return Some(path.to_path_buf());
    }
    let folder_like = arg == "." || arg == ".." || arg.contains('/');
    if folder_like && path.is_dir() && !path.join("pyproject.toml").is_file() {
        return ["package-lock.json", "package.json"]
            .iter()
            .map(|f| path.join(f))
            .find(|p| p.is_file());
    }
    None
}

/// Whether an argument names an npm input (see [`npm_file`]).
pub fn is_npm_file(arg: &str) -> bool {
    npm_file(arg).is_some()
}

/// `engines` as name to range, strings only.
pub fn engines_map(v: Option<serde_json::Value>) -> BTreeMap<String, String> {
    match v {
        Some(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Read a `package.json` (its dependencies and optional dependencies) or
/// a `package-lock.json` (v2 or v3: the tree it pins, dev packages left
/// out).
pub fn read_npm_file(path: &Path) -> Result<NpmFile, NpmFileError> {
    let file = path.display().to_string();
    let bad = |message: String| NpmFileError {
        file: file.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let is_lock = path.file_name().is_some_and(|n| n == "package-lock.json");
    if !is_lock {
        let pj: PackageJson =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a package.json: {e}")))?;
        let mut packages = Vec::new();
        let mut all = pj.dependencies;
        all.extend(pj.optional_dependencies);
        for (name, range) in all {
            let spec = format!("{name}@{range}");
            parse_spec(&spec).map_err(|e| bad(format!("dependency {spec}: {e}")))?;
            packages.push(spec);
        }
        if packages.is_empty() {
            return Err(bad("it lists no `dependencies` to bundle".into()));
        }
        return Ok(NpmFile {
            name: pj.name,
            packages,
            tree: None,
        });
    }
    let lock: LockFile =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a package-lock.json: {e}")))?;
    if lock.lockfile_version < 2 || lock.packages.is_empty() {
        return Err(bad(format!(
            "lockfileVersion {} has no `packages` map: make it again with npm 7 or newer (`npm install --package-lock-only`)",
            lock.lockfile_version
        )));
    }
    let mut packages = Vec::new();
    let mut tree = Vec::new();
    for (path, e) in lock.packages {
        if path.is_empty() {
            let mut all = e.dependencies;
            all.extend(e.optional_dependencies);
            packages = all.into_iter().map(|(n, r)| format!("{n}@{r}")).collect();
            continue;
        }
        if e.dev || e.in_bundle {
            continue;
        }
        if e.link || !path.starts_with("node_modules/") {
            return Err(bad(format!(
                "`{path}` is a link or workspace package; bundle takes registry packages only"
            )));
        }
        let name = e.name.clone().unwrap_or_else(|| {
            path.rsplit_once("node_modules/")
                .map_or(path.as_str(), |(_, n)| n)
                .to_string()
        });
        let plain_path = path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
        if !valid_name(&name) || !plain_path {
            return Err(bad(format!("`{path}` is not a package path")));
        }
        let missing = |what: &str| bad(format!("`{path}` has no `{what}`"));
        let version = e.version.ok_or_else(|| missing("version"))?;
        let resolved = e.resolved.ok_or_else(|| missing("resolved"))?;
        let integrity = e.integrity.ok_or_else(|| missing("integrity"))?;
        let integrity =
            Integrity::parse(&integrity).map_err(|err| bad(format!("`{path}`: {err}")))?;
        tree.push(LockedNpm {
            bin: e.bin.into_map(&name),
            name,
            path,
            version,
            resolved,
            integrity,
            dependencies: e.dependencies,
            optional_dependencies: e.optional_dependencies,
            peer_dependencies: e.peer_dependencies,
            optional: e.optional || e.dev_optional,
            peer: e.peer,
            has_install_script: e.has_install_script,
            os: e.os.into_vec(),
            cpu: e.cpu.into_vec(),
            libc: e.libc.into_vec(),
            engines: engines_map(e.engines),
        });
    }
    Ok(NpmFile {
        name: lock.name,
        packages,
        tree: Some(tree),
    })
}

/// The folder an npm input file is in (for messages).
pub fn folder_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}
