//! Recipes: what goes into a bundle, their TOML format and its checks.
//! Which recipe a command-line item names is [`super::items`]' job.

use crate::error::Diagnose;
use std::path::{Path, PathBuf};

use pep508_rs::{Requirement, VerbatimUrl};
use serde::{Deserialize, Serialize};

pub use crate::model::{Check, VerifySettings};
use toml::Spanned;

use crate::config::toml_file::{self, line_col, TomlError};

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error(transparent)]
    Toml(#[from] TomlError),
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot read recipe {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{arg}` is neither a recipe nor a valid requirement: {message}")]
    BadRequirement { arg: String, message: String },
    #[error("`{arg}` is a folder with no pyproject.toml, so not a project to bundle")]
    NotAProject { arg: String },
    #[error(transparent)]
    NpmFile(#[from] crate::config::npm::NpmFileError),
}

impl Diagnose for RecipeError {
    fn exit_code(&self) -> i32 {
        crate::error::BAD_INPUT
    }

    fn hint(&self) -> Option<String> {
        match self {
            RecipeError::Toml(_) | RecipeError::Invalid { .. } => {
                Some("the recipe format is in the README, under Formats; `bundle recipes` lists the built-in ones".into())
            }
            RecipeError::BadRequirement { .. } => Some(
                "write a PEP 508 requirement such as `httpx[http2]<1`, or a recipe name from `bundle recipes`".into(),
            ),
            RecipeError::NotAProject { .. } => Some(
                "a project folder needs a pyproject.toml with a [project] table; a wheel or sdist you have is named as `name @ ./path/name-1.0-py3-none-any.whl`".into(),
            ),
            RecipeError::NpmFile(_) => Some(
                "a package.json is read for its `dependencies` and `optionalDependencies`; a package-lock.json (lockfileVersion 2 or 3) for the tree it pins".into(),
            ),
            RecipeError::Read { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sdists {
    #[default]
    Never,
    Build,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPypi {
    #[serde(default)]
    requirements: Vec<Spanned<String>>,
    #[serde(default, deserialize_with = "exclude_newer")]
    exclude_newer: Option<String>,
    #[serde(default)]
    sdists: Option<Spanned<Sdists>>,
    #[serde(default)]
    check: Vec<Check>,
}

/// `exclude_newer`, refused at its place when it is not a real date.
fn exclude_newer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    crate::config::dates::exclude_newer(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A `[[release]]` table: one asset from a release page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub name: String,
    pub version: String,
    pub url: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub sha256_url: Option<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub check: Vec<Check>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Apt {
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub binaries: Vec<String>,
    /// How binaries find `lib/`: "runpath" (default: patched with
    /// `$ORIGIN/../lib`) or "wrapper" (unmodified, behind a shell script).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::model::manifest::Link>,
    #[serde(default)]
    pub check: Vec<Check>,
}

/// A `[[build]]` table: a program built from source inside the target's
/// image (a source archive and a script, or a crate from crates.io).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// The build's name; defaults to the crate's.
    #[serde(default)]
    pub name: Option<String>,
    /// A version (`1.0`), or for crates and github.com releases a semver
    /// requirement (`^14`); crates default to the newest.
    #[serde(default)]
    pub version: Option<String>,
    /// The source archive (`.tar.gz`, `.tar.xz`, `.zip`), with `{version}`,
    /// `{arch}` and `{triple}` as in releases.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub sha256_url: Option<String>,
    /// A crate of the crates.io index, built with its own `Cargo.lock`.
    #[serde(default, rename = "crate")]
    pub krate: Option<String>,
    /// Cargo features to enable.
    #[serde(default)]
    pub features: Vec<String>,
    /// Apt packages the build needs, installed in a cached build image.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Run with `sh -e` in the unpacked source; installs into `$PREFIX`.
    #[serde(default)]
    pub script: Option<String>,
    /// Programs to take: `$PREFIX/bin/<name>`, else a path under `$PREFIX`.
    #[serde(default)]
    pub binaries: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::model::manifest::Link>,
    #[serde(default)]
    pub check: Vec<Check>,
}

impl Build {
    /// The name it goes by in messages, the plan and the manifest.
    pub fn name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.krate.as_deref())
            .unwrap_or("build")
    }

    /// What is wrong with the table, if anything.
    fn problem(&self) -> Option<String> {
        let name = self.name();
        let named = |what: &str| format!("[[build]] `{name}`: {what}");
        match (&self.url, &self.krate) {
            (Some(_), Some(_)) => return Some(named("give either `url` or `crate`, not both")),
            (None, None) => return Some(named(
                "give `url` (a source archive and a `script`) or `crate` (a crate from crates.io)",
            )),
            (Some(_), None) => {
                if self.name.is_none() {
                    return Some("[[build]] with a `url` needs a `name`".into());
                }
                if self.version.is_none() {
                    return Some(named("needs a `version`"));
                }
                if self.script.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    return Some(named(
                        "needs a `script` that installs the programs into $PREFIX",
                    ));
                }
                if !self.features.is_empty() {
                    return Some(named("`features` are for crates"));
                }
            }
            (None, Some(c)) => {
                if !plain_crate_word(c) {
                    return Some(named(&format!("`{c}` is not a crate name")));
                }
                if self.sha256.is_some() || self.sha256_url.is_some() || self.script.is_some() {
                    return Some(named(
                        "a crate takes no `sha256`, `sha256_url` or `script`: the index's checksum pins it and cargo builds it",
                    ));
                }
            }
        }
        if self.binaries.is_empty() {
            return Some(named("lists no `binaries` to take"));
        }
        if let Some(bad) = self.packages.iter().find(|p| !plain_apt_word(p)) {
            return Some(named(&format!("`{bad}` is not a Debian package name")));
        }
        if let Some(bad) = self.binaries.iter().find(|b| !relative_program(b)) {
            return Some(named(&format!(
                "`{bad}` is not a program name or a relative path under $PREFIX"
            )));
        }
        if let Some(bad) = self.features.iter().find(|f| !plain_crate_word(f)) {
            return Some(named(&format!("`{bad}` is not a feature name")));
        }
        None
    }
}

/// A Debian package or program name that is safe in a shell command.
pub(super) fn plain_apt_word(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._:=~".contains(c))
}

/// A crate or feature name: safe in a shell command and a URL.
fn plain_crate_word(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_/+.".contains(c))
        && !s.contains("..")
}

/// A program name or a relative path under $PREFIX, with nothing that
/// climbs out of it.
fn relative_program(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && s.split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && plain_apt_word(part))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    pypi: Option<RawPypi>,
    #[serde(default)]
    release: Vec<Release>,
    #[serde(default)]
    apt: Option<Spanned<Apt>>,
    #[serde(default)]
    build: Vec<Spanned<Build>>,
    #[serde(default)]
    npm: Option<Spanned<super::npm::RawNpm>>,
    #[serde(default)]
    verify: VerifySettings,
}

/// The `[pypi]` part of a recipe, validated.
#[derive(Debug, Clone, Default)]
pub struct Pypi {
    pub requirements: Vec<Requirement<VerbatimUrl>>,
    /// Versions allowed for packages that get installed (`-c FILE`).
    pub constraints: Vec<Requirement<VerbatimUrl>>,
    /// `--hash` pins by normalized package name (from `-r FILE`).
    pub hashes: std::collections::BTreeMap<String, Vec<crate::model::Sha256>>,
    /// Build wheels from sdists (in the target image) when a version has no wheel.
    pub sdists: Sdists,
    pub exclude_newer: Option<String>,
    pub check: Vec<Check>,
    /// A project's `requires-python` (its pyproject.toml, then the value):
    /// a target whose Python it excludes is refused.
    pub requires_python: Option<(String, String)>,
}

/// A validated recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub name: String,
    pub description: String,
    pub target: Option<String>,
    pub pypi: Pypi,
    pub releases: Vec<Release>,
    pub apt: Option<Apt>,
    /// `[[build]]` tables: programs built from source in the target's image.
    pub builds: Vec<Build>,
    /// npm packages and their runtime.
    pub npm: Option<super::npm::Npm>,
    /// What verify skips.
    pub verify: VerifySettings,
    /// Where it came from, for messages.
    pub origin: String,
}

impl Pypi {
    /// The `[pypi]` table, its requirements checked where they are; a path
    /// (`name @ ./dist/x.whl`) is relative to the recipe's folder.
    fn parse(
        p: RawPypi,
        file: &str,
        invalid: &dyn Fn(usize, String) -> RecipeError,
    ) -> Result<Pypi, RecipeError> {
        let dir = Path::new(file).parent().filter(|d| d.is_dir());
        let dir = crate::fsutil::absolute(dir.unwrap_or(Path::new(".")));
        let mut pypi = Pypi::default();
        for r in &p.requirements {
            let req = Requirement::<VerbatimUrl>::parse(r.get_ref(), &dir).map_err(|e| {
                invalid(
                    r.span().start,
                    format!("invalid requirement `{}`: {e}", r.get_ref()),
                )
            })?;
            if let Some(problem) = super::requirements::url_problem(&req) {
                return Err(invalid(
                    r.span().start,
                    format!("`{}`: {problem}", r.get_ref()),
                ));
            }
            pypi.requirements.push(req);
        }
        pypi.sdists = p.sdists.map(|s| s.into_inner()).unwrap_or_default();
        pypi.exclude_newer = p.exclude_newer;
        pypi.check = p.check;
        Ok(pypi)
    }
}

impl Recipe {
    /// Parse recipe text; `file` names it in errors.
    pub fn parse(name: &str, text: &str, file: &str) -> Result<Recipe, RecipeError> {
        let raw: RawRecipe = toml_file::parse(text, file)?;
        let invalid = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            RecipeError::Invalid {
                file: file.to_string(),
                line,
                column,
                message,
            }
        };
        let pypi = match raw.pypi {
            Some(p) => Pypi::parse(p, file, &invalid)?,
            None => Pypi::default(),
        };
        let apt = match raw.apt {
            Some(a) => {
                let at = a.span().start;
                let a = a.into_inner();
                if a.packages.is_empty() {
                    return Err(invalid(at, "[apt] lists no `packages` to install".into()));
                }
                if a.binaries.is_empty() {
                    return Err(invalid(
                        at,
                        "[apt] lists no `binaries` to take from the installed packages".into(),
                    ));
                }
                if let Some(bad) = a
                    .packages
                    .iter()
                    .chain(&a.binaries)
                    .find(|s| !plain_apt_word(s))
                {
                    let at = text.find(&format!("\"{bad}\"")).unwrap_or(at);
                    return Err(invalid(
                        at,
                        format!("`{bad}` is not a Debian package or program name"),
                    ));
                }
                Some(a)
            }
            None => None,
        };
        for rel in &raw.release {
            if rel.files.is_empty() {
                let at = text.find(&rel.url).unwrap_or(0);
                return Err(invalid(
                    at,
                    format!(
                        "release `{}` lists no `files` to take from the archive",
                        rel.name
                    ),
                ));
            }
        }
        let mut builds = Vec::new();
        for b in raw.build {
            let at = b.span().start;
            let b = b.into_inner();
            if let Some(message) = b.problem() {
                return Err(invalid(at, message));
            }
            if builds.iter().any(|o: &Build| o.name() == b.name()) {
                return Err(invalid(
                    at,
                    format!("two [[build]] tables are named `{}`", b.name()),
                ));
            }
            builds.push(b);
        }
        let npm = match raw.npm {
            Some(n) => {
                let at = n.span().start;
                Some(super::npm::Npm::parse(n.into_inner(), at, &invalid)?)
            }
            None => None,
        };
        Ok(Recipe {
            name: name.to_string(),
            description: raw.description.unwrap_or_default(),
            target: raw.target,
            pypi,
            releases: raw.release,
            apt,
            builds,
            npm,
            verify: raw.verify,
            origin: file.to_string(),
        })
    }

    /// A recipe made of PEP 508 requirements given on the command line.
    pub(super) fn from_requirements(args: &[String]) -> Result<Recipe, RecipeError> {
        let mut pypi = Pypi::default();
        for a in args {
            // (A path, not a name: `requests` may be a folder here too.)
            let path_like = a == "." || a == ".." || a.contains('/');
            if path_like && Path::new(a).is_dir() {
                return Err(RecipeError::NotAProject { arg: a.clone() });
            }
            let req = Requirement::<VerbatimUrl>::parse(a, crate::fsutil::absolute(Path::new(".")))
                .map_err(|e| RecipeError::BadRequirement {
                    arg: a.clone(),
                    message: e.to_string(),
                })?;
            if let Some(problem) = super::requirements::url_problem(&req) {
                return Err(RecipeError::BadRequirement {
                    arg: a.clone(),
                    message: problem,
                });
            }
            pypi.requirements.push(req);
        }
        let name = pypi
            .requirements
            .iter()
            .map(|r| r.name.to_string())
            .collect::<Vec<_>>()
            .join("+");
        Ok(Recipe {
            name,
            description: String::new(),
            target: None,
            pypi,
            releases: Vec::new(),
            apt: None,
            builds: Vec::new(),
            npm: None,
            verify: VerifySettings::default(),
            origin: "<command line>".into(),
        })
    }

    /// Merge another recipe into this one (for `bundle build a b`).
    /// A recipe of PyPI requirements named `name` (a project, a
    /// requirements file).
    pub fn of_requirements(
        name: &str,
        requirements: Vec<Requirement<VerbatimUrl>>,
        origin: &str,
    ) -> Recipe {
        Recipe {
            name: name.to_string(),
            description: String::new(),
            target: None,
            pypi: Pypi {
                requirements,
                ..Pypi::default()
            },
            releases: Vec::new(),
            apt: None,
            builds: Vec::new(),
            npm: None,
            verify: VerifySettings::default(),
            origin: origin.to_string(),
        }
    }

    /// A recipe of npm packages named `name`.
    pub fn of_npm(name: &str, npm: super::npm::Npm, origin: &str) -> Recipe {
        Recipe {
            name: name.trim_start_matches('@').replace('/', "-"),
            description: String::new(),
            target: None,
            pypi: Pypi::default(),
            releases: Vec::new(),
            apt: None,
            builds: Vec::new(),
            npm: Some(npm),
            verify: VerifySettings::default(),
            origin: origin.to_string(),
        }
    }

    pub fn merge(&mut self, other: Recipe) {
        self.name = format!("{}+{}", self.name, other.name);
        self.pypi.requirements.extend(other.pypi.requirements);
        self.pypi.constraints.extend(other.pypi.constraints);
        for (name, hashes) in other.pypi.hashes {
            self.pypi.hashes.entry(name).or_default().extend(hashes);
        }
        self.pypi.check.extend(other.pypi.check);
        self.verify.merge(other.verify);
        if self.pypi.requires_python.is_none() {
            self.pypi.requires_python = other.pypi.requires_python;
        }
        if self.pypi.exclude_newer.is_none() {
            self.pypi.exclude_newer = other.pypi.exclude_newer;
        }
        if other.pypi.sdists == Sdists::Build {
            self.pypi.sdists = Sdists::Build;
        }
        self.apt = match (self.apt.take(), other.apt) {
            (Some(mut a), Some(b)) => {
                for p in b.packages {
                    if !a.packages.contains(&p) {
                        a.packages.push(p);
                    }
                }
                for p in b.binaries {
                    if !a.binaries.contains(&p) {
                        a.binaries.push(p);
                    }
                }
                a.check.extend(b.check);
                a.link = a.link.or(b.link);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        self.releases.extend(other.releases);
        for b in other.builds {
            if !self.builds.contains(&b) {
                self.builds.push(b);
            }
        }
        self.npm = match (self.npm.take(), other.npm) {
            (Some(mut a), Some(b)) => {
                a.merge(b);
                Some(a)
            }
            (a, b) => a.or(b),
        };
        if self.target.is_none() {
            self.target = other.target;
        }
    }

    /// All checks of the recipe, in order.
    pub fn checks(&self) -> Vec<Check> {
        let mut out = self.pypi.check.clone();
        for r in &self.releases {
            out.extend(r.check.iter().cloned());
        }
        if let Some(a) = &self.apt {
            out.extend(a.check.iter().cloned());
        }
        for b in &self.builds {
            out.extend(b.check.iter().cloned());
        }
        if let Some(n) = &self.npm {
            out.extend(n.check.iter().cloned());
        }
        out
    }
}

/// Names of built-in recipes with their descriptions.
/// A commented recipe with every key, for `bundle recipes --new`.
pub const TEMPLATE: &str = include_str!("recipe_template.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_with_and_without_its_commented_keys() {
        Recipe::parse("t", TEMPLATE, "template").unwrap();
        // Uncommented, every key is one the parser accepts (a second
        // `sha256_url` alternative aside).
        let all: String = TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest.split_once(" = ").is_some_and(|(k, _)| {
                            k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        }) =>
                {
                    rest.to_string()
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let r = Recipe::parse("t", &all, "template").unwrap();
        assert_eq!(r.target.as_deref(), Some("chatgpt-2023"));
        assert_eq!(r.releases.len(), 1);
        assert!(r.apt.is_some());
        assert_eq!(r.pypi.exclude_newer.as_deref(), Some("2023-05-03"));
        assert_eq!(r.builds.len(), 2);
        assert_eq!(r.builds[1].krate.as_deref(), Some("ripgrep"));
        let npm = r.npm.expect("the [npm] table");
        assert_eq!(npm.packages, ["prettier@^3"]);
        assert_eq!(npm.runtime, crate::model::npm::RuntimeKind::Node);
    }

    #[test]
    fn build_tables_are_checked_where_they_are() {
        let ok = "[[build]]\nname = \"hello\"\nversion = \"1.0\"\nurl = \"https://127.0.0.1/h-{version}.tar.gz\"\n\
                  sha256 = \"00\"\npackages = [\"build-essential\"]\nscript = \"make install\"\nbinaries = [\"hello\", \"sbin/helper\"]\n";
        let r = Recipe::parse("x", ok, "x.toml").unwrap();
        assert_eq!(r.builds.len(), 1);
        assert_eq!(r.builds[0].name(), "hello");
        let krate = "[[build]]\ncrate = \"ripgrep\"\nversion = \"^14\"\nbinaries = [\"rg\"]\n";
        let r = Recipe::parse("x", krate, "x.toml").unwrap();
        assert_eq!(r.builds[0].name(), "ripgrep");
        let cases = [
            (
                ok.replace("binaries = [\"hello\", \"sbin/helper\"]", "binaries = []"),
                "x.toml:1:1: [[build]] `hello`: lists no `binaries`",
            ),
            (
                ok.replace("script = \"make install\"\n", ""),
                "needs a `script`",
            ),
            (ok.replace("name = \"hello\"\n", ""), "needs a `name`"),
            (
                ok.replace("\"sbin/helper\"", "\"../../etc/passwd\""),
                "is not a program name or a relative path",
            ),
            (
                ok.replace("\"build-essential\"", "\"gcc; curl x | sh\""),
                "is not a Debian package name",
            ),
            (format!("{krate}script = \"x\"\n"), "a crate takes no"),
            (
                format!("{krate}url = \"https://127.0.0.1/x.tar.gz\"\n"),
                "either `url` or `crate`",
            ),
            (
                format!("description = \"x\"\n{krate}\n{krate}"),
                "x.toml:7:1: two [[build]] tables are named `ripgrep`",
            ),
            ("[[build]]\nbinaries = [\"x\"]\n".to_string(), "give `url`"),
            (format!("{krate}flavour = 1\n"), "x.toml:5:1"),
        ];
        for (text, want) in cases {
            let e = Recipe::parse("x", &text, "x.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}\n{text}");
        }
        // Merged recipes keep each build once, and their checks.
        let mut a = Recipe::parse("a", krate, "a.toml").unwrap();
        let b = Recipe::parse("b", ok, "b.toml").unwrap();
        a.merge(b.clone());
        a.merge(b);
        assert_eq!(a.builds.len(), 2);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = "description = \"x\"\n[pypi]\nrequirements = [\"a\"]\nrequirement = [\"b\"]\n";
        let e = Recipe::parse("x", text, "recipes/x.toml").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("recipes/x.toml:4:1: "), "{msg}");
        assert!(msg.contains("requirement"), "{msg}");
    }

    #[test]
    fn bad_requirement_points_at_it() {
        let text = "[pypi]\nrequirements = [\n  \"ok\",\n  \"bad ===\",\n]\n";
        let e = Recipe::parse("x", text, "x.toml").unwrap_err();
        assert!(
            e.to_string().starts_with("x.toml:4:3: invalid requirement"),
            "{e}"
        );
    }

    #[test]
    fn apt_tables_are_checked_where_they_are() {
        let e = Recipe::parse("x", "[apt]\npackages = [\"lua5.3\"]\n", "x.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.toml:1:1: [apt] lists no `binaries`"),
            "{e}"
        );
        let text = "[apt]\npackages = [\"lua5.3\", \"evil; rm -rf /\"]\nbinaries = [\"lua5.3\"]\n";
        let e = Recipe::parse("x", text, "x.toml").unwrap_err();
        assert!(
            e.to_string().starts_with("x.toml:2:23: `evil; rm -rf /`"),
            "{e}"
        );
        let text = "[apt]\npackages = [\"lua5.3\"]\nbinaries = [\"lua5.3\"]\nlink = \"copy\"\n";
        assert!(Recipe::parse("x", text, "x.toml").is_err());
        let r = Recipe::parse(
            "lua5.3",
            include_str!("../../recipes/lua5.3.toml"),
            "lua5.3",
        )
        .unwrap();
        let apt = r.apt.unwrap();
        assert_eq!(
            (apt.packages, apt.binaries),
            (vec!["lua5.3".to_string()], vec!["lua5.3".to_string()])
        );
    }
}
