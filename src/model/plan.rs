//! The Plan: every file a bundle will hold, pinned, before anything is
//! downloaded. `bundle plan --json` prints it; a lock file is a saved Plan.

use serde::{Deserialize, Serialize};

use super::manifest::Link;
use super::{Check, Sha256, TargetSummary};

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
}

/// A package left out of the bundle, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Excluded {
    /// Its name.
    pub package: String,
    /// The version the target has.
    pub version: String,
    /// Why it is left out (`preinstalled on target`).
    pub reason: String,
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
    /// Packages left out.
    pub excluded: Vec<Excluded>,
    /// Preinstalled packages the bundle brings another version of
    /// (`--upgrade-preinstalled`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replaced>,
    /// The recipe's checks.
    pub checks: Vec<Check>,
}

/// A preinstalled package the bundle replaces with another version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Replaced {
    /// Its name.
    pub package: String,
    /// The version the target has.
    pub preinstalled: String,
    /// The version the bundle installs over it.
    pub version: String,
}
