//! npm inputs: `name@range` specs with npm's range syntax (turned into the
//! `semver` crate's requirements, one per `||` alternative), package
//! names, and `package.json` / `package-lock.json` files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::integrity::Integrity;
use crate::model::npm::{spec_name, LockedNpm};

/// A version range in npm's syntax: alternatives (`||`), each a set of
/// comparators that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    text: String,
    sets: Vec<semver::VersionReq>,
}

impl Range {
    /// Parse npm's range syntax: `^1.2`, `~1.2.3`, `>=1 <3`, `1.x`,
    /// `1.2.3 - 2`, `a || b`, `*`, `` (any), `1.2.3` (exactly).
    pub fn parse(text: &str) -> Result<Range, String> {
        let mut sets = Vec::new();
        for alt in text.split("||") {
            let comparators = set_comparators(alt.trim())?;
            let joined = if comparators.is_empty() {
                "*".to_string()
            } else {
                comparators.join(", ")
            };
            let req = semver::VersionReq::parse(&joined)
                .map_err(|e| format!("`{}` is not a version range: {e}", alt.trim()))?;
            sets.push(req);
        }
        Ok(Range {
            text: text.trim().to_string(),
            sets,
        })
    }

    /// Any version.
    pub fn any() -> Range {
        Range::parse("*").expect("`*` parses")
    }

    /// Whether `v` is in the range. As npm, a pre-release matches only a
    /// set that names a pre-release of the same `major.minor.patch`.
    pub fn matches(&self, v: &semver::Version) -> bool {
        self.sets.iter().any(|r| r.matches(v))
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One version in npm's loose form: `v` and `=` prefixes dropped, build
/// metadata kept for the parser to ignore.
fn clean_version(s: &str) -> &str {
    s.trim_start_matches('=').trim_start_matches(['v', 'V'])
}

/// A partial version's numeric parts up to the first wildcard, and the
/// rest (pre-release) when it is full: `1.x` → ["1"], `1.2.3-rc.1` →
/// ["1","2","3-rc.1"].
fn partial(s: &str) -> Result<Vec<&str>, String> {
    let s = clean_version(s);
    let mut parts = Vec::new();
    for (i, p) in s.splitn(3, '.').enumerate() {
        if matches!(p, "x" | "X" | "*") || p.is_empty() && i == 0 {
            break;
        }
        let digits_end = p.find(['-', '+']).unwrap_or(p.len());
        if p[..digits_end].is_empty() || !p[..digits_end].bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{s}` is not a version"));
        }
        if i < 2 && digits_end != p.len() {
            return Err(format!("`{s}` is not a version"));
        }
        parts.push(p);
    }
    Ok(parts)
}

/// The `semver` comparators of one `||` alternative.
fn set_comparators(set: &str) -> Result<Vec<String>, String> {
    // A hyphen range: `A - B`.
    if let Some((a, b)) = set.split_once(" - ") {
        let (lo, hi) = (partial(a.trim())?, partial(b.trim())?);
        let mut out = Vec::new();
        if !lo.is_empty() {
            out.push(format!(">={}", lo.join(".")));
        }
        if !hi.is_empty() {
            out.push(format!("<={}", hi.join(".")));
        }
        return Ok(out);
    }
    // Operators may stand apart from their version (`>= 1.2`).
    let mut words: Vec<String> = Vec::new();
    for w in set.split_whitespace() {
        match words.last_mut() {
            Some(last)
                if matches!(
                    last.as_str(),
                    "<" | ">" | "<=" | ">=" | "=" | "~" | "^" | "~>"
                ) =>
            {
                last.push_str(w)
            }
            _ => words.push(w.to_string()),
        }
    }
    let mut out = Vec::new();
    for w in words {
        let (op, rest) = split_op(&w);
        let parts = partial(rest)?;
        if parts.is_empty() {
            match op {
                // `<*` matches nothing; `>*` nothing either.
                "<" | ">" => return Err(format!("`{w}` matches no version")),
                _ => continue,
            }
        }
        let v = parts.join(".");
        let op = match op {
            "" | "=" => "=",
            "~>" => "~",
            other => other,
        };
        out.push(format!("{op}{v}"));
    }
    Ok(out)
}

fn split_op(w: &str) -> (&str, &str) {
    for op in [">=", "<=", "~>", ">", "<", "=", "~", "^"] {
        if let Some(rest) = w.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", w)
}

/// What a spec asks for: a range, or a dist-tag (`latest`, `next`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Range(Range),
    Tag(String),
}

impl Want {
    /// A range, else a tag name; anything else (a URL, a path, an alias)
    /// is refused, saying what bundle takes.
    pub fn parse(spec: &str) -> Result<Want, String> {
        let spec = spec.trim();
        if let Ok(r) = Range::parse(spec) {
            return Ok(Want::Range(r));
        }
        let tag_like = spec.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && spec
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if tag_like {
            return Ok(Want::Tag(spec.to_string()));
        }
        let kind = if spec.starts_with("npm:") {
            "an alias (`npm:other@range`)"
        } else if spec.contains("://") || spec.starts_with("git") || spec.starts_with("github:") {
            "a URL or git source"
        } else if spec.starts_with("file:")
            || spec.starts_with("link:")
            || spec.starts_with('.')
            || spec.starts_with('/')
        {
            "a local path"
        } else if spec.starts_with("workspace:") {
            "a workspace"
        } else {
            return Err(format!(
                "`{spec}` is neither a version range nor a dist-tag"
            ));
        };
        Err(format!(
            "`{spec}` is {kind}; bundle takes registry packages with a version range or a dist-tag"
        ))
    }

    /// As written.
    pub fn text(&self) -> &str {
        match self {
            Want::Range(r) => r.as_str(),
            Want::Tag(t) => t,
        }
    }
}

/// Whether `name` is a registry package name bundle accepts: URL-safe, at
/// most 214 characters, not starting with `.` or `_`, `@scope/name` for a
/// scoped one.
pub fn valid_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '_'])
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
    };
    if name.is_empty() || name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, rest)) => part(scope) && part(rest),
            None => false,
        },
        None => part(name),
    }
}

/// `name@spec` checked: the name, and what the spec asks for (`latest`
/// when none is given).
pub fn parse_spec(spec: &str) -> Result<(String, Want), String> {
    let name = spec_name(spec);
    if !valid_name(name) {
        return Err(format!("`{name}` is not an npm package name"));
    }
    let rest = spec[name.len()..].strip_prefix('@').unwrap_or("");
    let want = if rest.is_empty() {
        Want::Tag("latest".into())
    } else {
        Want::parse(rest)?
    };
    Ok((name.to_string(), want))
}

/// `runtime = "node"`, `"node@^22"`, `"deno@2"` or `"system"`.
pub fn parse_runtime(text: &str) -> Result<(crate::model::npm::RuntimeKind, Range), String> {
    use crate::model::npm::RuntimeKind;
    let (kind, range) = match text.split_once('@') {
        Some((k, r)) => (k, r),
        None => (text, "*"),
    };
    let kind = match kind {
        "node" => RuntimeKind::Node,
        "deno" => RuntimeKind::Deno,
        "system" if range == "*" => RuntimeKind::System,
        "system" => return Err("`system` takes no version: it is the sandbox's own `node`".into()),
        other => {
            return Err(format!(
                "`{other}` is not a runtime: write \"node\", \"deno\" (each with an optional @range) or \"system\""
            ))
        }
    };
    Ok((kind, Range::parse(range)?))
}

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
        if !valid_name(&name) || crate::archive::safe_member_path(&path).is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn npm_ranges_mean_what_npm_means() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("^3", &["3.0.0", "3.9.1"], &["2.9.9", "4.0.0", "3.1.0-rc.1"]),
            ("1.2.3", &["1.2.3"], &["1.2.4"]),
            ("1.2", &["1.2.0", "1.2.9"], &["1.3.0"]),
            ("1.x", &["1.0.0", "1.9.0"], &["2.0.0"]),
            ("~1.2.3", &["1.2.9"], &["1.3.0"]),
            (">=1.2 <3", &["1.2.0", "2.9.9"], &["3.0.0", "1.1.9"]),
            (">= 1.2.0 < 2", &["1.5.0"], &["2.0.0"]),
            ("1.2.3 - 2.3", &["1.2.3", "2.3.9"], &["2.4.0", "1.2.2"]),
            ("<1 || >=3", &["0.5.0", "3.1.0"], &["2.0.0"]),
            ("*", &["0.0.1", "9.9.9"], &["1.0.0-beta"]),
            ("", &["1.0.0"], &[]),
            ("v1.0.0", &["1.0.0"], &["1.0.1"]),
            (
                "^1.0.0-rc.1",
                &["1.0.0-rc.2", "1.0.0", "1.5.0"],
                &["1.1.0-rc.1"],
            ),
            ("^0.2.3", &["0.2.9"], &["0.3.0"]),
        ];
        for (range, yes, no) in cases {
            let r = Range::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
            for y in *yes {
                assert!(r.matches(&v(y)), "{range} should match {y}");
            }
            for n in *no {
                assert!(!r.matches(&v(n)), "{range} should not match {n}");
            }
        }
        assert!(Range::parse("not a range").is_err());
    }

    #[test]
    fn specs_name_a_package_and_a_range_or_tag() {
        let (n, w) = parse_spec("prettier@^3").unwrap();
        assert_eq!((n.as_str(), w.text()), ("prettier", "^3"));
        let (n, w) = parse_spec("@esbuild/linux-x64").unwrap();
        assert_eq!(
            (n.as_str(), w),
            ("@esbuild/linux-x64", Want::Tag("latest".into()))
        );
        assert_eq!(
            parse_spec("typescript@next").unwrap().1,
            Want::Tag("next".into())
        );
        for bad in [
            "../etc@1",
            "Bad Name",
            "x@git+https://h/r.git",
            "x@file:../y",
            "x@npm:y@1",
            "",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
        assert!(parse_runtime("node@^22").is_ok());
        assert!(parse_runtime("bun").is_err());
        assert!(parse_runtime("system@1").is_err());
    }
}
