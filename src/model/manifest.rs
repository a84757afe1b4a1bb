//! `manifest.json`: what a bundle holds, and why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Check, Sha256, TargetSummary, VerifySettings};
pub use super::{Excluded, Link, Replaced};

/// The manifest's schema version.
pub const MANIFEST_SCHEMA: u32 = 1;

/// What kind of file a bundle entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A wheel under `wheels/`.
    Wheel,
    /// A program under `bin/` (or its unmodified copy under `libexec/`).
    Binary,
    /// A shared library under `lib/`.
    Library,
    /// Anything else.
    File,
}

/// One installed Debian package.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AptPackage {
    /// Its name.
    pub package: String,
    /// Its Debian version.
    pub version: String,
    /// Its Debian architecture (`amd64`, `arm64`, `all`).
    pub architecture: String,
    /// The `.deb` file it was installed from (kept in the cache, so that a
    /// rebuild installs it offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deb: Option<String>,
    /// That file's sha256, as the distribution's package lists give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
}

/// Where a built file comes from and what built it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuildRecord {
    /// The source archive's URL, or `crate NAME VERSION`.
    pub from: String,
    /// The source archive's (or `.crate` file's) sha256.
    pub sha256: Sha256,
    /// The build image: the target's image and the packages added.
    pub image: String,
    /// The Rust toolchain (`rustc -V`), for crates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolchain: Option<String>,
}

/// One file of the bundle, as listed in `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative, `/`-separated path in the bundle.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// The sha256 of the bytes in the bundle.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// The package (PyPI project, release or Debian package) it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// That package's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where it was fetched from, or the image it was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The highest `GLIBC_x.y` it needs (ELF files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibc: Option<String>,
    /// Its DT_NEEDED libraries (ELF files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed: Option<Vec<String>>,
    /// How a binary finds the bundle's `lib/` (apt binaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
    /// The sdist a wheel was built from, in the target image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_from: Option<String>,
    /// How a `[[build]]` program (or a library it needs) was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildRecord>,
    /// The modules a wheel makes importable (top level).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    /// A wheel's console scripts, program name to `module:attr`: install.py
    /// writes a launcher `bin/<program>` for each.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scripts: BTreeMap<String, String>,
    /// The projects a wheel requires on the target, extras aside
    /// (normalized names): install.py refuses to install when one is
    /// neither in the bundle nor on the machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
}

impl FileEntry {
    /// An entry with what every file has; the optional fields are set by
    /// the stage that knows them.
    pub fn new(path: impl Into<String>, kind: FileKind, sha256: Sha256, size: u64) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind,
            sha256,
            size,
            package: None,
            version: None,
            source: None,
            glibc: None,
            needed: None,
            link: None,
            built_from: None,
            build: None,
            modules: Vec::new(),
            scripts: BTreeMap::new(),
            requires: Vec::new(),
        }
    }

    /// The entry of a file written at `root/path`, hashed from disk.
    pub fn of_written(
        root: &std::path::Path,
        path: &str,
        kind: FileKind,
    ) -> std::io::Result<FileEntry> {
        let (sha256, size) = Sha256::of_file(&root.join(path))?;
        Ok(FileEntry::new(path, kind, sha256, size))
    }

    /// The package and version it comes from.
    pub fn from_package(mut self, package: impl Into<String>, version: Option<String>) -> Self {
        self.package = Some(package.into());
        self.version = version;
        self
    }

    /// The module a wheel is imported by: the one named like its package
    /// (`python-dateutil` → none, `sqlite-utils` → `sqlite_utils`), else
    /// the first of `modules`.
    pub fn import_name<'a>(&'a self, modules: &'a [String]) -> Option<&'a str> {
        let wanted = self
            .package
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
            .replace(['-', '.'], "_");
        modules
            .iter()
            .find(|m| m.to_ascii_lowercase() == wanted)
            .or_else(|| modules.first())
            .map(String::as_str)
    }

    /// Where it came from.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// `manifest.json`, schema 1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Always [`MANIFEST_SCHEMA`].
    pub schema: u32,
    /// The bundle's name (its folder and archive name).
    pub name: String,
    /// `bundle <version>`.
    pub created_by: String,
    /// The target it was made for.
    pub target: TargetSummary,
    /// What was asked for (PEP 508), e.g. for verify's import checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// Every file, sorted by path.
    pub files: Vec<FileEntry>,
    /// Packages left out, and why.
    pub excluded: Vec<Excluded>,
    /// Preinstalled packages the bundle installs another version of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replaced>,
    /// The recipe's checks.
    pub checks: Vec<Check>,
    /// What verify skips (the recipe's `[verify]` table).
    #[serde(default, skip_serializing_if = "VerifySettings::is_empty")]
    pub verify: VerifySettings,
    /// Debian packages installed to take `bin/` and `lib/` from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apt: Vec<AptPackage>,
}

/// What `bin/<name>` of an installed bundle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A file of the bundle (release, apt or build binary).
    Binary,
    /// A launcher install.py writes for a wheel's console script.
    Script {
        /// The wheel's package.
        package: String,
        /// `module:attr` it calls.
        reference: String,
    },
}

impl Manifest {
    /// Every program under `bin/` once the bundle is installed, by name: the
    /// bundle's binaries, then the console scripts of its wheels (a binary,
    /// or an earlier wheel in path order, keeps a name already taken).
    pub fn programs(&self) -> BTreeMap<String, Program> {
        let mut out = BTreeMap::new();
        for f in &self.files {
            if f.kind == FileKind::Binary {
                if let Some(name) = f.path.strip_prefix("bin/") {
                    out.insert(name.to_string(), Program::Binary);
                }
            }
        }
        for f in self.files.iter().filter(|f| f.kind == FileKind::Wheel) {
            for (name, reference) in &f.scripts {
                out.entry(name.clone()).or_insert_with(|| Program::Script {
                    package: f.package.clone().unwrap_or_default(),
                    reference: reference.clone(),
                });
            }
        }
        out
    }

    /// The shell command a check runs as the user would run it: its first
    /// word, when it names one of the bundle's programs, becomes that
    /// program's full path under `bundle_dir` (nothing is added to PATH).
    pub fn check_command(&self, run: &str, bundle_dir: &str) -> String {
        let trimmed = run.trim_start();
        let word_end = trimmed
            .find(|c: char| c.is_whitespace() || c == ';' || c == '|' || c == '&')
            .unwrap_or(trimmed.len());
        let (word, rest) = trimmed.split_at(word_end);
        if self.programs().contains_key(word) {
            let dir = bundle_dir.trim_end_matches('/');
            format!(
                "{}{rest}",
                crate::model::sh_quote(&format!("{dir}/bin/{word}"))
            )
        } else {
            run.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wheel_is_imported_by_the_module_named_like_it() {
        let entry = |package: &str| {
            FileEntry::new("wheels/x.whl", FileKind::Wheel, Sha256::of(b""), 0)
                .from_package(package, None)
        };
        let duckdb = ["adbc_driver_duckdb".to_string(), "duckdb".to_string()];
        assert_eq!(entry("duckdb").import_name(&duckdb), Some("duckdb"));
        let utils = ["sqlite_utils".to_string()];
        assert_eq!(
            entry("sqlite-utils").import_name(&utils),
            Some("sqlite_utils")
        );
        let dateutil = ["dateutil".to_string()];
        assert_eq!(
            entry("python-dateutil").import_name(&dateutil),
            Some("dateutil")
        );
        assert_eq!(entry("empty").import_name(&[]), None);
    }
}
