//! Requirements from files: pip's requirements format (`-r FILE`, with
//! `-c` constraints, nested `-r`, and `--hash` pins) and a project's
//! `pyproject.toml` (`[project].dependencies` and optional extras).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::{Requirement, VerbatimUrl};

use crate::model::Sha256;

/// Requirements read from files.
#[derive(Debug, Clone, Default)]
pub struct FileRequirements {
    /// What to install.
    pub requirements: Vec<Requirement<VerbatimUrl>>,
    /// Versions allowed for packages that get installed (`-c`).
    pub constraints: Vec<Requirement<VerbatimUrl>>,
    /// `--hash=sha256:...` pins by normalized package name: the chosen file
    /// must have one of them.
    pub hashes: BTreeMap<String, Vec<Sha256>>,
    /// Each requirement line read: (file, line, name, whether it has a hash).
    lines: Vec<(String, usize, String, bool)>,
}

/// A problem in a requirements file or pyproject.toml.
#[derive(Debug, thiserror::Error)]
pub enum RequirementsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Pyproject { file: String, message: String },
    /// The project folder could not be packed to be built.
    #[error("cannot pack the project in {dir} to build it: {message}")]
    Pack { dir: PathBuf, message: String },
}

impl crate::error::Diagnose for RequirementsError {
    fn exit_code(&self) -> i32 {
        match self {
            RequirementsError::Pack { .. } => crate::error::WORK_FAILED,
            _ => crate::error::BAD_INPUT,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RequirementsError::Invalid { .. } => Some(
                "bundle reads pip's requirements format: PEP 508 lines, comments, `-r FILE`, `-c FILE` and `--hash=sha256:HEX`; other options (-e, --index-url, ...) go on bundle's own command line".into(),
            ),
            RequirementsError::Pyproject { .. } => Some(
                "bundle reads [project].dependencies and [project.optional-dependencies] (PEP 621)".into(),
            ),
            RequirementsError::Read { .. } | RequirementsError::Pack { .. } => None,
        }
    }
}

/// How deep `-r`/`-c` includes may nest (a loop stops here).
const MAX_DEPTH: usize = 16;

impl FileRequirements {
    /// Read `-r FILE`s and `-c FILE`s.
    pub fn read(
        requirements: &[PathBuf],
        constraints: &[PathBuf],
    ) -> Result<Self, RequirementsError> {
        let mut out = FileRequirements::default();
        for f in requirements {
            out.read_file(f, false, 0)?;
        }
        for f in constraints {
            out.read_file(f, true, 0)?;
        }
        // Hash-checking mode, as pip's: a --hash on one requirement asks for
        // one on every requirement.
        if out.lines.iter().any(|l| l.3) {
            if let Some((file, line, name, _)) = out.lines.iter().find(|l| !l.3) {
                return Err(RequirementsError::Invalid {
                    file: file.clone(),
                    line: *line,
                    message: format!(
                        "`{name}` has no --hash, but other requirements do: in hash-checking mode (as pip's) every requirement needs --hash=sha256:HEX"
                    ),
                });
            }
        }
        Ok(out)
    }

    fn read_file(
        &mut self,
        path: &Path,
        constraint: bool,
        depth: usize,
    ) -> Result<(), RequirementsError> {
        let text = std::fs::read_to_string(path).map_err(|source| RequirementsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file = path.display().to_string();
        let dir = path.parent().unwrap_or(Path::new(""));
        for (line_no, line) in logical_lines(&text) {
            let invalid = |message: String| RequirementsError::Invalid {
                file: file.clone(),
                line: line_no,
                message,
            };
            let mut words = line.split_whitespace().peekable();
            let Some(first) = words.peek().copied() else {
                continue;
            };
            // Includes: `-r FILE`, `--requirement FILE`, `-c FILE`, and the
            // `=`/attached forms.
            let include = [
                ("-r", false),
                ("--requirement", false),
                ("-c", true),
                ("--constraint", true),
            ]
            .iter()
            .find_map(|(flag, is_c)| {
                if first == *flag {
                    Some((line.split_whitespace().nth(1).map(str::to_string), *is_c))
                } else {
                    first
                        .strip_prefix(&format!("{flag}="))
                        .or_else(|| first.strip_prefix(flag).filter(|_| flag.len() == 2))
                        .filter(|rest| !rest.is_empty())
                        .map(|rest| (Some(rest.to_string()), *is_c))
                }
            });
            if let Some((target, is_c)) = include {
                let target = target.ok_or_else(|| invalid(format!("`{first}` needs a file")))?;
                if depth >= MAX_DEPTH {
                    return Err(invalid(format!(
                        "includes nest deeper than {MAX_DEPTH} (a loop?)"
                    )));
                }
                self.read_file(&dir.join(target), constraint || is_c, depth + 1)?;
                continue;
            }
            if first.starts_with('-') {
                return Err(invalid(format!(
                    "the option `{first}` is not supported in a requirements file"
                )));
            }
            // A requirement, then its options (`--hash=sha256:...`).
            let (spec, options) = match line.find(" --") {
                Some(i) => (&line[..i], &line[i..]),
                None => (line.as_str(), ""),
            };
            // A path (`name @ ./dist/x.whl`) is relative to this file.
            let base = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let req = Requirement::<VerbatimUrl>::parse(spec.trim(), crate::fsutil::absolute(base))
                .map_err(|e| invalid(format!("invalid requirement `{}`: {e}", spec.trim())))?;
            if let Some(problem) = url_problem(&req) {
                return Err(invalid(format!("`{}`: {problem}", spec.trim())));
            }
            let hashes = hash_options(options).map_err(invalid)?;
            if !constraint {
                self.lines.push((
                    file.clone(),
                    line_no,
                    req.name.to_string(),
                    !hashes.is_empty(),
                ));
            }
            if !hashes.is_empty() {
                self.hashes
                    .entry(req.name.to_string())
                    .or_default()
                    .extend(hashes);
            }
            if constraint {
                self.constraints.push(req);
            } else {
                self.requirements.push(req);
            }
        }
        Ok(())
    }
}

/// The `--hash` options after a requirement: `--hash=sha256:HEX`, or
/// `--hash sha256:HEX` as pip takes it. Anything else is refused.
fn hash_options(options: &str) -> Result<Vec<Sha256>, String> {
    let mut hashes = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(option) = words.next() {
        let value = match option.strip_prefix("--hash=") {
            Some(v) => v,
            None if option == "--hash" => words
                .next()
                .ok_or_else(|| "`--hash` needs a value (sha256:HEX)".to_string())?,
            None => {
                return Err(format!(
                    "the option `{option}` is not supported after a requirement"
                ))
            }
        };
        let hex = value.strip_prefix("sha256:").ok_or_else(|| {
            format!("`{value}`: only sha256 hashes are supported (--hash=sha256:HEX)")
        })?;
        hashes.push(Sha256::parse(hex).map_err(|e| e.to_string())?);
    }
    Ok(hashes)
}

/// Lines without comments, joined across `\` continuations, with the
/// number of the line each starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        // A comment starts at `#` at the line's start or after whitespace.
        let mut line = raw.to_string();
        if let Some(pos) = line
            .char_indices()
            .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)))
            .map(|(i, _)| i)
        {
            line.truncate(pos);
        }
        let (body, continued) = match line.trim_end().strip_suffix('\\') {
            Some(b) => (b.to_string(), true),
            None => (line, false),
        };
        let entry = current.get_or_insert((i + 1, String::new()));
        entry.1.push_str(&body);
        entry.1.push(' ');
        if !continued {
            let (n, l) = current.take().expect("set above");
            let l = l.trim().to_string();
            if !l.is_empty() {
                out.push((n, l));
            }
        }
    }
    if let Some((n, l)) = current {
        if !l.trim().is_empty() {
            out.push((n, l.trim().to_string()));
        }
    }
    out
}

/// Whether a command-line item names a project: `.`, a folder holding a
/// `pyproject.toml`, or a `pyproject.toml` path. Returns that file.
pub fn pyproject_path(arg: &str) -> Option<PathBuf> {
    let path = Path::new(arg);
    if path.file_name().is_some_and(|f| f == "pyproject.toml") && path.is_file() {
        return Some(path.to_path_buf());
    }
    let file = path.join("pyproject.toml");
    (path.is_dir() && file.is_file()).then_some(file)
}

/// What a pyproject.toml asks for: a project's name and version, and its
/// dependencies with those of the extras asked for.
#[derive(Debug)]
pub struct Project {
    pub name: String,
    /// Its `[project].version`; `None` when the build backend computes it.
    pub version: Option<String>,
    /// Its dependencies and the optional ones of the extras asked for, as
    /// the file lists them.
    pub requirements: Vec<Requirement<VerbatimUrl>>,
    /// Whether the build backend computes them (`dynamic`): then only a
    /// build of the project can tell.
    pub dynamic_dependencies: bool,
    /// Its `requires-python`.
    pub requires_python: Option<String>,
    /// The pyproject.toml, for messages.
    pub file: String,
}

impl Project {
    /// Its dependencies, to bundle without the project itself: refused when
    /// they cannot be read or there are none, rather than bundle nothing
    /// and call it already installed.
    pub fn dependencies_only(self) -> Result<Vec<Requirement<VerbatimUrl>>, RequirementsError> {
        let bad = |message: &str| RequirementsError::Pyproject {
            file: self.file.clone(),
            message: message.to_string(),
        };
        if self.dynamic_dependencies {
            return Err(bad(
                "its dependencies are dynamic (the build backend computes them), which only a build of the project can read: leave out --no-install-project to build it, or name them as requirements (`bundle build -r requirements.txt`)",
            ));
        }
        if self.requirements.is_empty() {
            return Err(bad(
                "declares no dependencies to bundle, and --no-install-project leaves out the project itself: name what it needs in [project].dependencies, or as requirements",
            ));
        }
        Ok(self.requirements)
    }
}

/// Read a project's pyproject.toml, with the `extras` asked for.
pub fn read_pyproject(path: &Path, extras: &[String]) -> Result<Project, RequirementsError> {
    let file = path.display().to_string();
    let bad = |message: String| RequirementsError::Pyproject {
        file: file.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| RequirementsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let project = doc
        .get("project")
        .and_then(|p| p.as_table())
        .ok_or_else(|| bad("has no [project] table".into()))?;
    let name = project
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| bad("[project] has no `name`".into()))?
        .to_string();
    let version = match project.get("version") {
        None => None,
        Some(v) => {
            let v = v
                .as_str()
                .ok_or_else(|| bad("[project].version is not a string".into()))?;
            let parsed = pep440_rs::Version::from_str(v)
                .map_err(|e| bad(format!("[project].version `{v}`: {e}")))?;
            Some(parsed.to_string())
        }
    };
    let list = |value: Option<&toml::Value>,
                what: &str|
     -> Result<Vec<Requirement<VerbatimUrl>>, RequirementsError> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let items = value
            .as_array()
            .ok_or_else(|| bad(format!("{what} is not a list")))?;
        items
            .iter()
            .map(|v| {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad(format!("{what} holds a non-string")))?;
                Requirement::<VerbatimUrl>::from_str(s)
                    .map_err(|e| bad(format!("{what}: invalid requirement `{s}`: {e}")))
            })
            .collect()
    };
    let dynamic = |field: &str| {
        project
            .get("dynamic")
            .and_then(|d| d.as_array())
            .is_some_and(|d| d.iter().any(|v| v.as_str() == Some(field)))
    };
    let dynamic_dependencies = dynamic("dependencies") || dynamic("optional-dependencies");
    let mut reqs = list(project.get("dependencies"), "[project].dependencies")?;
    let optional = project
        .get("optional-dependencies")
        .and_then(|o| o.as_table());
    for extra in extras {
        let Some(deps) = optional.and_then(|o| o.get(extra)) else {
            if dynamic("optional-dependencies") {
                // Only the build can tell which extras there are.
                continue;
            }
            let known: Vec<&String> = optional.map(|o| o.keys().collect()).unwrap_or_default();
            return Err(bad(format!(
                "has no optional dependencies `{extra}` (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        };
        reqs.extend(list(
            Some(deps),
            &format!("[project.optional-dependencies].{extra}"),
        )?);
    }
    let requires_python = project
        .get("requires-python")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    Ok(Project {
        name,
        version,
        requirements: reqs,
        dynamic_dependencies,
        requires_python,
        file,
    })
}

/// What is wrong with the URL a requirement names, if anything, as far as
/// can be told without fetching it: its scheme, or a local file that is not
/// there.
pub fn url_problem(req: &Requirement<VerbatimUrl>) -> Option<String> {
    let Some(pep508_rs::VersionOrUrl::Url(url)) = &req.version_or_url else {
        return None;
    };
    match url.scheme() {
        "https" | "http" => None,
        "file" => match url.to_file_path() {
            Ok(p) if p.exists() => None,
            Ok(p) => Some(format!("{} does not exist", p.display())),
            Err(()) => Some(format!("{} is not a local path", url.as_str())),
        },
        other => Some(format!(
            "{other}: URLs are not supported (only file://, https:// and http://, not VCS URLs)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Diagnose;

    #[test]
    fn pip_format_with_includes_constraints_and_hashes() {
        let d = tempfile::tempdir().unwrap();
        let h = "a".repeat(64);
        std::fs::write(
            d.path().join("req.txt"),
            format!(
                "# top comment\nrequests[socks]>=2 ; python_version >= \"3.7\" --hash=sha256:{h}  # why\nlib==1.0 \\\n    --hash sha256:{h}\n-r more.txt\n-c constraints.txt\n\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.path().join("more.txt"),
            format!("six --hash=sha256:{h}\n"),
        )
        .unwrap();
        std::fs::write(d.path().join("constraints.txt"), "urllib3<2\n").unwrap();
        let r = FileRequirements::read(&[d.path().join("req.txt")], &[]).unwrap();
        let names: Vec<String> = r.requirements.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            names,
            [
                "requests[socks]>=2 ; python_full_version >= '3.7'",
                "lib==1.0",
                "six"
            ]
        );
        assert_eq!(r.constraints[0].to_string(), "urllib3<2");
        // Both forms, `--hash=` and `--hash ` (as pip takes them).
        assert_eq!(r.hashes["lib"][0].as_str(), h);
        assert_eq!(r.hashes["six"][0].as_str(), h);
    }

    #[test]
    fn a_hash_on_one_requirement_asks_for_one_on_every_requirement() {
        let d = tempfile::tempdir().unwrap();
        let h = "b".repeat(64);
        let f = d.path().join("r.txt");
        std::fs::write(&f, format!("a --hash=sha256:{h}\nb\n")).unwrap();
        let e = FileRequirements::read(std::slice::from_ref(&f), &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains(":2: `b` has no --hash, but other requirements do"),
            "{e}"
        );
        assert_eq!(e.exit_code(), crate::error::BAD_INPUT);
        // Across included files too; constraints need none.
        std::fs::write(&f, format!("a --hash=sha256:{h}\n-r more.txt\n-c c.txt\n")).unwrap();
        std::fs::write(d.path().join("more.txt"), "\nc\n").unwrap();
        std::fs::write(d.path().join("c.txt"), "z<2\n").unwrap();
        let e = FileRequirements::read(std::slice::from_ref(&f), &[]).unwrap_err();
        assert!(
            e.to_string().contains("more.txt:2: `c` has no --hash"),
            "{e}"
        );
        std::fs::write(d.path().join("more.txt"), format!("c --hash sha256:{h}\n")).unwrap();
        assert!(FileRequirements::read(std::slice::from_ref(&f), &[]).is_ok());
        std::fs::write(&f, "a --hash\n").unwrap();
        let e = FileRequirements::read(std::slice::from_ref(&f), &[]).unwrap_err();
        assert!(e.to_string().contains("`--hash` needs a value"), "{e}");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("r.txt");
        for (text, wanted) in [
            ("ok\n-e .\n", ":2: the option `-e`"),
            ("lib --hash=md5:00\n", ":1: `md5:00`: only sha256"),
            ("lib --hash=sha256:../../etc\n", ":1:"),
            ("not a requirement!!\n", ":1: invalid requirement"),
            ("-r r.txt\n", "includes nest deeper"),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = FileRequirements::read(std::slice::from_ref(&f), &[]).unwrap_err();
            assert!(e.to_string().contains(wanted), "{text:?}: {e}");
        }
    }

    #[test]
    fn pyproject_dependencies_and_extras() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("pyproject.toml"),
            "[project]\nname = \"demo\"\ndependencies = [\"lib>=1\"]\n[project.optional-dependencies]\ncli = [\"click\"]\n",
        )
        .unwrap();
        let path = pyproject_path(d.path().to_str().unwrap()).unwrap();
        let Project {
            name,
            requirements: reqs,
            ..
        } = read_pyproject(&path, &["cli".into()]).unwrap();
        assert_eq!(name, "demo");
        assert_eq!(reqs.len(), 2);
        let e = read_pyproject(&path, &["gui".into()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("no optional dependencies `gui` (it has: cli)"),
            "{e}"
        );
    }
}
