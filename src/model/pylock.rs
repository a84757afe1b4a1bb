//! PEP 751 `pylock.toml`: the wheels of a bundle (or a plan) as a standard
//! lock file, for installers that read one (`uv pip install -r pylock.toml`).

use serde::Serialize;

use super::manifest::{FileKind, Manifest};
use super::plan::Plan;
use super::TargetSummary;

/// A `pylock.toml` document (lock-version 1.0).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Pylock {
    /// Always `1.0`.
    pub lock_version: String,
    /// The one environment the lock is for: the target's.
    pub environments: Vec<String>,
    /// The target's Python, `==major.minor.*`.
    pub requires_python: String,
    /// `bundle <version>`.
    pub created_by: String,
    /// One entry per package, sorted by name.
    pub packages: Vec<Package>,
}

/// A locked package.
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its wheel (one: the file chosen for the target).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wheels: Vec<File>,
    /// The sdist a wheel is built from in the target's image, when the plan
    /// builds one (a plan's lock only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdist: Option<File>,
}

/// A file of a package: `path` (relative to the lock file) or `url`.
#[derive(Debug, Clone, Serialize)]
pub struct File {
    /// The file name.
    pub name: String,
    /// Where it is, relative to the lock file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Where it is fetched from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Its size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `{sha256 = "..."}`.
    pub hashes: std::collections::BTreeMap<String, String>,
}

fn header(target: &TargetSummary, packages: Vec<Package>) -> Pylock {
    let machine = match target.platform.as_str() {
        "linux/arm64" | "linux/arm64/v8" => "aarch64",
        _ => "x86_64",
    };
    let minor: String = target
        .python
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    let mut packages = packages;
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Pylock {
        lock_version: "1.0".into(),
        environments: vec![format!(
            "sys_platform == 'linux' and platform_machine == '{machine}' and python_version == '{minor}'"
        )],
        requires_python: format!("=={minor}.*"),
        created_by: format!("bundle {}", env!("CARGO_PKG_VERSION")),
        packages,
    }
}

fn sha(hash: &super::Sha256) -> std::collections::BTreeMap<String, String> {
    [("sha256".to_string(), hash.to_string())].into()
}

impl Pylock {
    /// The lock of a bundle's wheels, pointing at `wheels/<file>`.
    pub fn of_manifest(m: &Manifest) -> Pylock {
        let packages = m
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Wheel)
            .map(|f| Package {
                name: f.package.clone().unwrap_or_default(),
                version: f.version.clone().unwrap_or_default(),
                wheels: vec![File {
                    name: f.path.rsplit('/').next().unwrap_or(&f.path).to_string(),
                    path: Some(f.path.clone()),
                    url: None,
                    size: Some(f.size),
                    hashes: sha(&f.sha256),
                }],
                sdist: None,
            })
            .collect();
        header(&m.target, packages)
    }

    /// The lock of a plan's wheels, with their URLs (a wheel built from an
    /// sdist is locked as that sdist).
    pub fn of_plan(plan: &Plan) -> Pylock {
        let packages = plan
            .wheels
            .iter()
            .map(|w| match &w.sdist {
                Some(s) => Package {
                    name: w.package.clone(),
                    version: w.version.clone(),
                    wheels: Vec::new(),
                    sdist: Some(File {
                        name: s.filename.clone(),
                        path: None,
                        url: Some(w.url.clone()),
                        size: None,
                        hashes: sha(&s.sha256),
                    }),
                },
                None => Package {
                    name: w.package.clone(),
                    version: w.version.clone(),
                    wheels: vec![File {
                        name: w.filename.clone(),
                        path: None,
                        url: Some(w.url.clone()),
                        size: w.size,
                        hashes: w.sha256.as_ref().map(sha).unwrap_or_default(),
                    }],
                    sdist: None,
                },
            })
            .collect();
        header(&plan.target, packages)
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a pylock serializes")
    }
}
