//! Target profiles: the machine a bundle must run on.

use crate::error::Diagnose;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, PackageName};
use serde::{Deserialize, Serialize};

use crate::model::TargetSummary;

use crate::config::toml_file::{self, TomlError};

/// The default target when neither the command line nor the recipe names one.
pub const DEFAULT_TARGET: &str = "ubuntu-20.04";

/// Built-in profiles: (name, TOML text).
const BUILTIN: &[(&str, &str)] = &[
    (
        "chatgpt-2023",
        include_str!("../../recipes/targets/chatgpt-2023.toml"),
    ),
    (
        "ubuntu-20.04",
        include_str!("../../recipes/targets/ubuntu-20.04.toml"),
    ),
    (
        "ubuntu-20.04-arm64",
        include_str!("../../recipes/targets/ubuntu-20.04-arm64.toml"),
    ),
];

/// Built-in data files a profile may refer to by name.
const BUILTIN_FILES: &[(&str, &str)] = &[(
    "chatgpt-2023-pip-freeze.txt",
    include_str!("../../recipes/targets/chatgpt-2023-pip-freeze.txt"),
)];

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("unknown target `{name}`")]
    Unknown { name: String, known: Vec<String> },
    #[error(transparent)]
    Toml(#[from] TomlError),
    #[error("cannot read target file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

impl Diagnose for TargetError {
    fn exit_code(&self) -> i32 {
        crate::error::BAD_INPUT
    }

    fn hint(&self) -> Option<String> {
        match self {
            TargetError::Unknown { known, name } => Some(format!(
                "{}known targets: {}; or pass the path of a target .toml file (see `bundle targets`)",
                crate::error::closest(name, known.iter().map(String::as_str))
                    .map(|c| format!("did you mean `{c}`? "))
                    .unwrap_or_default(),
                known.join(", ")
            )),
            TargetError::Toml(_) | TargetError::Invalid { .. } => {
                Some("the target profile format is in the README, under Formats; `bundle targets` lists the built-in ones".into())
            }
            TargetError::Read { .. } => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Preinstalled {
    File(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    description: String,
    image: String,
    platform: String,
    glibc: String,
    python: String,
    #[serde(default)]
    system_packages: Vec<String>,
    #[serde(default)]
    preinstalled: Option<Preinstalled>,
    #[serde(default = "default_upload_dir", deserialize_with = "upload_dir")]
    upload_dir: String,
    #[serde(default = "default_user")]
    user: String,
    #[serde(default = "default_timeout")]
    command_timeout_s: u64,
    #[serde(default = "default_max_file", deserialize_with = "max_file_bytes")]
    max_file_bytes: u64,
    /// Highest GLIBCXX_x.y.z the target's libstdc++ provides (optional).
    #[serde(default)]
    glibcxx: Option<String>,
    /// Shared libraries (sonames) the target has beyond the base list.
    #[serde(default, deserialize_with = "libraries")]
    libraries: Vec<String>,
}

// Values checked as they are read, so that a refusal points at the value
// (file:line:col): PROMPT.txt and the uploads are written from them.

use serde::de::Error as _;

/// An absolute folder path, of printable characters, without `..`.
fn upload_dir<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let problem = if s.is_empty() {
        Some("it is empty")
    } else if !s.starts_with('/') {
        Some("it is relative")
    } else if s.chars().any(char::is_control) {
        Some("it holds a control character (a newline, a tab...)")
    } else if s.split('/').any(|p| p == "..") {
        Some("it holds `..`")
    } else {
        None
    };
    match problem {
        Some(why) => Err(D::Error::custom(format!(
            "upload_dir {s:?} must be the absolute path of the sandbox's upload folder, such as \"/mnt/data\": {why}"
        ))),
        None => Ok(s),
    }
}

/// The smallest upload limit a profile may set: 1 MB.
pub const MIN_FILE_BYTES: u64 = 1_000_000;

fn max_file_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n < MIN_FILE_BYTES {
        return Err(D::Error::custom(format!(
            "max_file_bytes = {n} bytes is below 1 MB ({MIN_FILE_BYTES} bytes): the sandbox's largest upload, in bytes, such as 536870912 (512 MiB)"
        )));
    }
    Ok(n)
}

/// Sonames: not empty, no `/`, printable.
fn libraries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    if let Some(bad) = list.iter().find(|l| {
        l.is_empty() || l.contains('/') || l.chars().any(|c| c.is_control() || c.is_whitespace())
    }) {
        return Err(D::Error::custom(format!(
            "libraries: {bad:?} is not a library's soname (such as \"libz.so.1\": no `/`, no spaces, not empty)"
        )));
    }
    Ok(list)
}

fn default_upload_dir() -> String {
    "/mnt/data".into()
}
fn default_user() -> String {
    "sandbox".into()
}
fn default_timeout() -> u64 {
    60
}
fn default_max_file() -> u64 {
    512 * 1024 * 1024
}

/// CPU architecture, named as wheel tags and release URLs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// A resolved target profile.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub description: String,
    pub image: String,
    pub platform: String,
    pub arch: Arch,
    pub glibc: (u32, u32),
    pub python: Version,
    /// False for `python = "none"`: the machine has no Python, so bundles
    /// for it hold no wheels and install with install.sh.
    pub has_python: bool,
    /// How it was named: a built-in name or the profile's path.
    pub source: String,
    pub system_packages: Vec<String>,
    /// Packages already installed on the target, by normalized name.
    pub preinstalled: BTreeMap<PackageName, Version>,
    pub upload_dir: String,
    pub user: String,
    pub command_timeout_s: u64,
    pub max_file_bytes: u64,
    pub glibcxx: Option<String>,
    pub libraries: Vec<String>,
}

/// Names of the built-in targets.
pub fn builtin_names() -> Vec<String> {
    BUILTIN.iter().map(|(n, _)| n.to_string()).collect()
}

impl Target {
    /// Load a target by built-in name, or from a `.toml` path.
    pub fn load(name_or_path: &str) -> Result<Target, TargetError> {
        let path = Path::new(name_or_path);
        if name_or_path.ends_with(".toml") || path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| name_or_path.to_string());
            let dir = path.parent().map(Path::to_path_buf);
            let mut target =
                Target::parse(&name, &text, &path.display().to_string(), dir.as_deref())?;
            target.source = name_or_path.to_string();
            return Ok(target);
        }
        match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, text)) => Target::parse(n, text, &format!("<built-in target {n}>"), None),
            None => Err(TargetError::Unknown {
                name: name_or_path.to_string(),
                known: builtin_names(),
            }),
        }
    }

    /// Parse a profile. `dir` is where relative `preinstalled` files are looked up;
    /// built-in data files are the fallback.
    pub fn parse(
        name: &str,
        text: &str,
        file: &str,
        dir: Option<&Path>,
    ) -> Result<Target, TargetError> {
        let raw: TargetFile = toml_file::parse(text, file)?;
        let invalid = |message: String| TargetError::Invalid {
            file: file.to_string(),
            message,
        };
        let arch = match raw.platform.as_str() {
            "linux/amd64" => Arch::X86_64,
            "linux/arm64" | "linux/arm64/v8" => Arch::Aarch64,
            other => {
                return Err(invalid(format!(
                    "platform `{other}` is not supported; use linux/amd64 or linux/arm64"
                )))
            }
        };
        let glibc = parse_glibc(&raw.glibc)
            .ok_or_else(|| invalid(format!("glibc `{}` is not of the form 2.31", raw.glibc)))?;
        // `python = "none"`: a machine without Python (no wheels; install.sh).
        let has_python = raw.python != "none";
        let python = if has_python {
            Version::from_str(&raw.python)
                .map_err(|e| invalid(format!("python `{}`: {e}", raw.python)))?
        } else {
            Version::new([0, 0])
        };
        if python.release().len() < 2 {
            return Err(invalid(format!(
                "python `{}` must name at least major.minor",
                raw.python
            )));
        }
        let lines: Vec<String> = match raw.preinstalled {
            None => Vec::new(),
            Some(Preinstalled::List(list)) => list,
            Some(Preinstalled::File(f)) => {
                let from_dir = dir
                    .map(|d| d.join(&f))
                    .and_then(|p| std::fs::read_to_string(p).ok());
                let text = match from_dir {
                    Some(t) => t,
                    None => BUILTIN_FILES
                        .iter()
                        .find(|(n, _)| *n == f)
                        .map(|(_, t)| t.to_string())
                        .ok_or_else(|| invalid(format!("preinstalled file `{f}` not found")))?,
                };
                text.lines().map(str::to_string).collect()
            }
        };
        let preinstalled = parse_freeze(&lines).map_err(invalid)?;
        Ok(Target {
            name: name.to_string(),
            description: raw.description,
            image: raw.image,
            platform: raw.platform,
            arch,
            glibc,
            python,
            has_python,
            source: name.to_string(),
            system_packages: raw.system_packages,
            preinstalled,
            upload_dir: raw.upload_dir,
            user: raw.user,
            command_timeout_s: raw.command_timeout_s,
            max_file_bytes: raw.max_file_bytes,
            glibcxx: raw.glibcxx,
            libraries: raw.libraries,
        })
    }

    pub fn python_major_minor(&self) -> (u64, u64) {
        let r = self.python.release();
        (r[0], r[1])
    }

    /// PEP 508 marker environment of the target (never the host).
    pub fn marker_env(&self) -> MarkerEnvironment {
        let (major, minor) = self.python_major_minor();
        let full = self.python.to_string();
        let short = format!("{major}.{minor}");
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: self.arch.as_str(),
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full,
            python_version: &short,
            sys_platform: "linux",
        })
        .expect("target python version was validated when the target was parsed")
    }

    /// What of the profile changes a plan, with its digest, for locks.
    pub fn profile(&self) -> crate::model::plan::TargetProfile {
        let mut system_packages = self.system_packages.clone();
        system_packages.sort();
        let preinstalled: Vec<String> = self
            .preinstalled
            .iter()
            .map(|(n, v)| format!("{n}=={v}"))
            .collect();
        let summary = self.summary();
        let text = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.image,
            self.platform,
            summary.glibc,
            summary.python,
            system_packages.join(" "),
            preinstalled.join("\n")
        );
        crate::model::plan::TargetProfile {
            source: self.source.clone(),
            image: self.image.clone(),
            platform: self.platform.clone(),
            glibc: summary.glibc,
            python: summary.python,
            system_packages,
            preinstalled,
            digest: crate::model::Sha256::of(text.as_bytes()),
        }
    }

    pub fn summary(&self) -> TargetSummary {
        TargetSummary {
            name: self.name.clone(),
            platform: self.platform.clone(),
            glibc: format!("{}.{}", self.glibc.0, self.glibc.1),
            python: if self.has_python {
                self.python.to_string()
            } else {
                "none".into()
            },
        }
    }

    /// `manylinux_2_31` style description, for messages.
    pub fn glibc_str(&self) -> String {
        format!("{}.{}", self.glibc.0, self.glibc.1)
    }
}

fn parse_glibc(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Parse `pip freeze` lines (`name==version`); comments, blanks and
/// non-`==` lines (editables, direct URLs) are skipped.
fn parse_freeze(lines: &[String]) -> Result<BTreeMap<PackageName, Version>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('-') {
            continue;
        }
        let Some((name, version)) = line.split_once("==") else {
            continue;
        };
        let name = PackageName::from_str(name.trim())
            .map_err(|e| format!("preinstalled line {}: {e}", i + 1))?;
        // Distribution-patched versions such as `0.23ubuntu1` are not PEP 440;
        // such packages are not on PyPI either, so they cannot conflict.
        match Version::from_str(version.trim()) {
            Ok(version) => {
                out.insert(name, version);
            }
            Err(e) => tracing::debug!("preinstalled line {}: skipped: {e}", i + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pep508_rs::Requirement;

    #[test]
    fn builtin_targets_load() {
        for name in builtin_names() {
            Target::load(&name).unwrap();
        }
        let t = Target::load("chatgpt-2023").unwrap();
        let click = PackageName::from_str("click").unwrap();
        assert_eq!(t.preinstalled[&click].to_string(), "8.1.4");
        assert!(t.preinstalled.len() > 300);
        assert!(Target::load("ubuntu-20.04")
            .unwrap()
            .preinstalled
            .is_empty());
    }

    #[test]
    fn values_the_prompt_and_the_uploads_are_made_of_are_refused_at_their_place() {
        let base = "description = \"t\"\nimage = \"i\"\nplatform = \"linux/amd64\"\nglibc = \"2.31\"\npython = \"3.8.10\"\n";
        for (line, (l, c), words) in [
            ("upload_dir = \"\"", (6, 14), "it is empty"),
            ("upload_dir = \"mnt/data\"", (6, 14), "it is relative"),
            (
                "upload_dir = \"/mnt/da\\nta\"",
                (6, 14),
                "control character",
            ),
            ("upload_dir = \"/mnt/../etc\"", (6, 14), "`..`"),
            ("max_file_bytes = 0", (6, 18), "below 1 MB"),
            ("max_file_bytes = 999999", (6, 18), "below 1 MB"),
            (
                "libraries = [\"libz.so.1\", \"\"]",
                (6, 13),
                "is not a library's soname",
            ),
            (
                "libraries = [\"../../etc/x.so\"]",
                (6, 13),
                "is not a library's soname",
            ),
        ] {
            let text = format!("{base}{line}\n");
            let e = Target::parse("t", &text, "t.toml", None).unwrap_err();
            let TargetError::Toml(t) = &e else {
                panic!("{line}: {e}")
            };
            assert_eq!((t.line, t.column), (l, c), "{line}: {e}");
            assert!(e.to_string().contains(words), "{line}: {e}");
            assert_eq!(e.exit_code(), crate::error::BAD_INPUT);
        }
        let ok = format!("{base}upload_dir = \"/mnt/user data\"\nmax_file_bytes = 1000000\nlibraries = [\"libz.so.1\"]\n");
        let t = Target::parse("t", &ok, "t.toml", None).unwrap();
        assert_eq!(t.upload_dir, "/mnt/user data");
    }

    #[test]
    fn unknown_target_is_named_with_hint() {
        let e = Target::load("windows-95").unwrap_err();
        assert!(e.to_string().contains("windows-95"));
        assert!(e.hint().unwrap().contains("ubuntu-20.04"));
    }

    #[test]
    fn unknown_key_in_target_file() {
        let e = Target::parse(
            "x",
            "description = \"d\"\nimage = \"i\"\nplatform = \"linux/amd64\"\nglibc = \"2.31\"\npython = \"3.8.10\"\ncolour = 1\n",
            "x.toml",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("x.toml:6:1:"), "{e}");
    }

    fn marker(req: &str, t: &Target) -> bool {
        let r = Requirement::<pep508_rs::VerbatimUrl>::from_str(req).unwrap();
        r.evaluate_markers(&t.marker_env(), &[])
    }

    #[test]
    fn markers_are_evaluated_for_the_target_not_the_host() {
        let t = Target::load("ubuntu-20.04").unwrap();
        assert!(marker("importlib-resources; python_version < \"3.9\"", &t));
        assert!(marker("a; python_full_version >= \"3.8.10\"", &t));
        assert!(!marker("a; python_full_version > \"3.8.10\"", &t));
        assert!(marker("a; sys_platform == \"linux\"", &t));
        assert!(!marker("a; sys_platform == \"win32\"", &t));
        assert!(marker("a; platform_machine == \"x86_64\"", &t));
        assert!(!marker("a; platform_machine == \"aarch64\"", &t));
        assert!(marker("a; implementation_name == \"cpython\"", &t));
        let arm = Target::load("ubuntu-20.04-arm64").unwrap();
        assert!(marker("a; platform_machine == \"aarch64\"", &arm));
        assert_eq!(arm.arch.as_str(), "aarch64");
    }

    #[test]
    fn freeze_parsing_skips_noise() {
        let lines: Vec<String> = [
            "# c",
            "",
            "Foo_Bar==1.0",
            "x @ file:///tmp/x",
            "-e git+x",
            "distro-info==0.23ubuntu1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let m = parse_freeze(&lines).unwrap();
        assert_eq!(m.len(), 1);
        assert!(m.contains_key(&PackageName::from_str("foo-bar").unwrap()));
    }
}
