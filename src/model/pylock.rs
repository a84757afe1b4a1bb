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
    /// `[tool.bundle]`: what the target preinstalls that this lock relies on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<LockTool>,
    /// The target the lock is for.
    #[serde(skip)]
    target: TargetSummary,
}

/// `[tool.bundle]` of a lock.
#[derive(Debug, Clone, Serialize)]
pub struct LockTool {
    /// bundle's own table.
    pub bundle: LockToolBundle,
}

/// What the target preinstalls that the lock relies on.
#[derive(Debug, Clone, Serialize)]
pub struct LockToolBundle {
    /// The target's name.
    pub target: String,
    /// `name==version` of each preinstalled package the resolution left out.
    pub preinstalled: Vec<String>,
    /// Whether those packages are in `packages` (marked `preinstalled`), so
    /// the lock installs completely anywhere its environments hold.
    pub complete: bool,
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
    /// `[packages.tool.bundle]`: set on packages the target preinstalls,
    /// which the bundle itself leaves out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<PackageTool>,
}

/// `[packages.tool.bundle]` of a package.
#[derive(Debug, Clone, Serialize)]
pub struct PackageTool {
    /// bundle's own table.
    pub bundle: PackageToolBundle,
}

/// Why a package is in the lock though not in the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct PackageToolBundle {
    /// The target has it installed already: the bundle leaves it out.
    pub preinstalled: bool,
}

impl Package {
    /// A package the target preinstalls, locked to the wheel at `url`.
    pub fn preinstalled(name: &str, version: &str, wheel: File) -> Package {
        Package {
            name: name.to_string(),
            version: version.to_string(),
            wheels: vec![wheel],
            sdist: None,
            tool: Some(PackageTool {
                bundle: PackageToolBundle { preinstalled: true },
            }),
        }
    }
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

/// The environment marker of `platform` and `python` (`3.8.10`): any
/// CPython of that minor version there, or exactly that Python.
fn environment(platform: &str, python: &str, exact: bool) -> String {
    let machine = match platform {
        "linux/arm64" | "linux/arm64/v8" => "aarch64",
        _ => "x86_64",
    };
    let version = if exact {
        format!("python_full_version == '{python}'")
    } else {
        format!("python_version == '{}'", minor(python))
    };
    format!("sys_platform == 'linux' and platform_machine == '{machine}' and {version}")
}

fn minor(python: &str) -> String {
    python.split('.').take(2).collect::<Vec<_>>().join(".")
}

fn header(target: &TargetSummary, packages: Vec<Package>) -> Pylock {
    let mut packages = packages;
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Pylock {
        lock_version: "1.0".into(),
        environments: vec![environment(&target.platform, &target.python, false)],
        requires_python: format!("=={}.*", minor(&target.python)),
        created_by: format!("bundle {}", env!("CARGO_PKG_VERSION")),
        packages,
        tool: None,
        target: target.clone(),
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
                tool: None,
            })
            .collect();
        let mut lock = header(&m.target, packages);
        lock.relies_on(&m.excluded);
        lock
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
                    tool: None,
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
                    tool: None,
                },
            })
            .collect();
        let mut lock = header(&plan.target, packages);
        lock.relies_on(&plan.excluded);
        lock
    }

    /// Add the preinstalled packages the lock relies on (`packages`, each
    /// made by [`Package::preinstalled`]), so that it installs completely
    /// into an environment that has none of them. A package the lock already
    /// holds keeps its own entry.
    pub fn with_preinstalled(mut self, packages: Vec<Package>) -> Pylock {
        for p in packages {
            if !self.packages.iter().any(|q| q.name == p.name) {
                self.packages.push(p);
            }
        }
        self.packages.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(tool) = self.tool.as_mut() {
            tool.bundle.complete = true;
        }
        self.environments = vec![environment(
            &self.target.platform,
            &self.target.python,
            false,
        )];
        self
    }

    /// Record what the target preinstalls that this lock leaves out. An
    /// incomplete lock is narrowed to the target's exact Python, and its
    /// text says why (see [`Pylock::to_toml`]).
    fn relies_on(&mut self, excluded: &[super::plan::Excluded]) {
        if excluded.is_empty() {
            return;
        }
        self.tool = Some(LockTool {
            bundle: LockToolBundle {
                target: self.target.name.clone(),
                preinstalled: excluded
                    .iter()
                    .map(|e| format!("{}=={}", e.package, e.version))
                    .collect(),
                complete: false,
            },
        });
        self.environments = vec![environment(
            &self.target.platform,
            &self.target.python,
            true,
        )];
    }

    /// The TOML text.
    /// The TOML text. A lock that leaves out what the target preinstalls
    /// starts with a comment saying so.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a pylock serializes");
        match &self.tool {
            Some(t) if !t.bundle.complete => format!(
                "# This lock leaves out what target {} preinstalls: {}.\n\
                 # It installs completely only where those are installed already, so its\n\
                 # environment is that target's exact Python. `bundle lock --format pylock`\n\
                 # writes a complete lock, with them marked [packages.tool.bundle].\n{body}",
                t.bundle.target,
                t.bundle.preinstalled.join(", ")
            ),
            _ => body,
        }
    }
}
