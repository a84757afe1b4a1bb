//! The Plan: every file a bundle will hold, pinned, before anything is
//! downloaded. `bundle plan --json` prints it; a lock file is a saved Plan.

use serde::{Deserialize, Serialize};

use super::{Check, Sha256, TargetSummary, VerifySettings};
pub use super::{Excluded, Link, Replaced};

/// The Plan's schema version.
pub const PLAN_SCHEMA: u32 = 1;

/// One wheel to bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedWheel {
    /// The project's name, as the index spells it.
    pub package: String,
    /// The version chosen.
    pub version: String,
    /// The wheel's file name.
    pub filename: String,
    /// Where it is fetched from (the sdist's URL when it is built).
    pub url: String,
    /// Its sha256; None only with `--allow-unhashed`.
    pub sha256: Option<Sha256>,
    /// Its size, when the index gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Set when the wheel is built from an sdist in the target image: then
    /// `url` is the sdist's and `filename`/`sha256` are the built wheel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdist: Option<PlannedSdist>,
}

/// The sdist a wheel is built from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedSdist {
    /// The sdist's file name.
    pub filename: String,
    /// The sdist's sha256.
    pub sha256: Sha256,
}

/// Debian packages to install in the target's image, and programs to take.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedApt {
    /// Packages to install.
    pub packages: Vec<String>,
    /// Programs to take from them.
    pub binaries: Vec<String>,
    /// How the programs find `lib/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// The exact `.deb` files to install, in a lock file (`bundle lock`
    /// resolves them in the target's image); empty in a plain plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debs: Vec<LockedDeb>,
}

/// A `.deb` file a lock pins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockedDeb {
    /// The Debian package.
    pub package: String,
    /// Its exact version.
    pub version: String,
    /// The file name, `name_version_arch.deb`.
    pub deb: String,
    /// Its sha256, from the distribution's package lists.
    pub sha256: Sha256,
}

/// How a release asset is packed, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveKind {
    /// `.zip`
    Zip,
    /// `.tar.gz`, `.tgz`
    TarGz,
    /// `.tar.xz`, `.txz`
    TarXz,
    /// Anything else: the file itself.
    Bare,
}

impl ArchiveKind {
    /// The kind of a URL's file (query and fragment ignored).
    pub fn from_url(url: &str) -> ArchiveKind {
        ArchiveKind::from_name(url.split(['?', '#']).next().unwrap_or(url))
    }

    /// The kind of a file, by its name's ending (any case).
    pub fn from_name(name: &str) -> ArchiveKind {
        let path = name.to_ascii_lowercase();
        if path.ends_with(".zip") {
            ArchiveKind::Zip
        } else if path.ends_with(".tar.gz") || path.ends_with(".tgz") {
            ArchiveKind::TarGz
        } else if path.ends_with(".tar.xz") || path.ends_with(".txz") {
            ArchiveKind::TarXz
        } else {
            ArchiveKind::Bare
        }
    }
}

/// A release asset, pinned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedRelease {
    /// The release's name in the recipe.
    pub name: String,
    /// The version (resolved when the recipe says `latest`).
    pub version: String,
    /// The asset's URL.
    pub url: String,
    /// The asset's sha256.
    pub sha256: Sha256,
    /// How it is packed.
    pub archive: ArchiveKind,
    /// Members that become `bin/<file>`.
    pub files: Vec<String>,
}

/// A program built from source in the target's image, pinned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedBuild {
    /// The build's name in the recipe.
    pub name: String,
    /// The version chosen (a requirement resolved).
    pub version: String,
    /// What is built.
    pub source: BuildSource,
    /// Apt packages installed in the build image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// The build script (source archives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Cargo features (crates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Programs taken from `$PREFIX`.
    pub binaries: Vec<String>,
    /// How the programs find `lib/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
}

/// The source of a build.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BuildSource {
    /// A source archive.
    Archive {
        /// Its URL.
        url: String,
        /// Its sha256.
        sha256: Sha256,
        /// How it is packed.
        archive: ArchiveKind,
    },
    /// A crate of a cargo registry, with the dependencies its own
    /// `Cargo.lock` pins.
    Crate {
        /// The crate's name.
        #[serde(rename = "crate")]
        name: String,
        /// The `.crate` file's URL.
        url: String,
        /// Its sha256 (the index's checksum).
        sha256: Sha256,
        /// The sparse index it was resolved in.
        index: String,
    },
}

impl BuildSource {
    /// The source archive or `.crate` file: URL and sha256.
    pub fn file(&self) -> (&str, &Sha256) {
        match self {
            BuildSource::Archive { url, sha256, .. } | BuildSource::Crate { url, sha256, .. } => {
                (url, sha256)
            }
        }
    }
}

/// Every file a bundle will hold, pinned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Plan {
    /// Always [`PLAN_SCHEMA`].
    pub schema: u32,
    /// The bundle's name.
    pub name: String,
    /// The target it is planned for.
    pub target: TargetSummary,
    /// The package index resolved against.
    pub index_url: String,
    /// What was asked for (PEP 508).
    pub requirements: Vec<String>,
    /// Wheels, sorted by file name.
    pub wheels: Vec<PlannedWheel>,
    /// Release assets.
    #[serde(default)]
    pub releases: Vec<PlannedRelease>,
    /// Installed at build time in a container of the target image; the
    /// versions installed are recorded in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<PlannedApt>,
    /// Programs built from source in the target's image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<PlannedBuild>,
    /// npm packages and the runtime that runs them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npm: Option<super::npm::PlannedNpm>,
    /// Packages left out.
    pub excluded: Vec<Excluded>,
    /// The whole target profile the plan was made for: a lock is valid only
    /// for the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<TargetProfile>,
    /// Preinstalled packages the bundle brings another version of
    /// (`--upgrade-preinstalled`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replaced>,
    /// The recipe's checks.
    pub checks: Vec<Check>,
    /// What verify skips (the recipe's `[verify]` table).
    #[serde(default, skip_serializing_if = "VerifySettings::is_empty")]
    pub verify: VerifySettings,
}

/// What of a target profile changes a plan, and its digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetProfile {
    /// How the target was named: a built-in name or the profile's path.
    pub source: String,
    /// The sandbox's Docker image.
    pub image: String,
    /// Docker platform.
    pub platform: String,
    /// glibc, `major.minor`.
    pub glibc: String,
    /// Python version, or `none`.
    pub python: String,
    /// Apt packages the sandbox has.
    pub system_packages: Vec<String>,
    /// Its preinstalled packages, `name==version`, sorted.
    pub preinstalled: Vec<String>,
    /// sha256 of all the above but `source`.
    pub digest: Sha256,
}

impl TargetProfile {
    /// What differs from `other`, in words (empty when nothing does).
    pub fn changes_from(&self, other: &TargetProfile) -> Vec<String> {
        let mut out = Vec::new();
        for (what, a, b) in [
            ("image", &other.image, &self.image),
            ("platform", &other.platform, &self.platform),
            ("glibc", &other.glibc, &self.glibc),
            ("python", &other.python, &self.python),
        ] {
            if a != b {
                out.push(format!("{what} {a} -> {b}"));
            }
        }
        if other.system_packages != self.system_packages {
            out.push(format!(
                "system_packages [{}] -> [{}]",
                other.system_packages.join(", "),
                self.system_packages.join(", ")
            ));
        }
        let old: std::collections::BTreeSet<&String> = other.preinstalled.iter().collect();
        let new: std::collections::BTreeSet<&String> = self.preinstalled.iter().collect();
        let removed: Vec<&str> = old.difference(&new).map(|s| s.as_str()).collect();
        let added: Vec<&str> = new.difference(&old).map(|s| s.as_str()).collect();
        if !removed.is_empty() || !added.is_empty() {
            let cut = |v: &[&str]| {
                let mut s = v.iter().take(8).copied().collect::<Vec<_>>().join(", ");
                if v.len() > 8 {
                    s.push_str(&format!(" and {} more", v.len() - 8));
                }
                s
            };
            let mut parts = Vec::new();
            if !removed.is_empty() {
                parts.push(format!("no longer {}", cut(&removed)));
            }
            if !added.is_empty() {
                parts.push(format!("now {}", cut(&added)));
            }
            out.push(format!("preinstalled: {}", parts.join("; ")));
        }
        out
    }
}
