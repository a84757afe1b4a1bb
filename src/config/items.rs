//! What the command line names, as recipes: a built-in or local recipe
//! (`recipes/<name>.toml`, `--recipes DIR`, compiled-in ones), an
//! `apt:PACKAGE[=PROGRAMS]` item, or PEP 508 requirements; and where each
//! item comes from, for the summary.

use std::path::{Path, PathBuf};

use super::recipe::{plain_apt_word, Apt, Pypi, Recipe, RecipeError, VerifySettings};

const BUILTIN: &[(&str, &str)] = &[
    (
        "code-interpreter-2023",
        include_str!("../../recipes/code-interpreter-2023.toml"),
    ),
    ("deno", include_str!("../../recipes/deno.toml")),
    ("lua5.3", include_str!("../../recipes/lua5.3.toml")),
    ("lua5.4", include_str!("../../recipes/lua5.4.toml")),
    ("ripgrep", include_str!("../../recipes/ripgrep.toml")),
    (
        "sqlite-utils",
        include_str!("../../recipes/sqlite-utils.toml"),
    ),
];

/// A recipe's text: a local one (`<dir>/<name>.toml`, or a `.toml` path),
/// else a built-in one.
pub fn text_of(name: &str, dir: Option<&Path>) -> Option<String> {
    if name.ends_with(".toml") {
        return std::fs::read_to_string(name).ok();
    }
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("recipes"));
    std::fs::read_to_string(dir.join(format!("{name}.toml")))
        .ok()
        .or_else(|| {
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.to_string())
        })
}

pub fn builtin() -> Vec<(String, String)> {
    BUILTIN
        .iter()
        .map(|(n, t)| {
            let d = Recipe::parse(n, t, n)
                .map(|r| r.description)
                .unwrap_or_default();
            (n.to_string(), d)
        })
        .collect()
}

/// `apt:PKG` (its program of the same name goes to `bin/`) or
/// `apt:PKG=BIN1,BIN2`, from the command line.
fn apt_requirement(arg: &str) -> Option<Result<Recipe, RecipeError>> {
    let spec = arg.strip_prefix("apt:")?;
    let (package, binaries) = match spec.split_once('=') {
        Some((p, b)) => (p, b.split(',').map(str::to_string).collect::<Vec<_>>()),
        None => (spec, vec![spec.to_string()]),
    };
    let bad = |message: String| {
        Some(Err(RecipeError::BadRequirement {
            arg: arg.to_string(),
            message,
        }))
    };
    if !plain_apt_word(package) || package.contains(['=', ':']) {
        return bad(format!(
            "`{package}` is not a Debian package name (write apt:PACKAGE or apt:PACKAGE=PROGRAM,PROGRAM)"
        ));
    }
    if let Some(b) = binaries
        .iter()
        .find(|b| !plain_apt_word(b) || b.contains('='))
    {
        return bad(format!("`{b}` is not a program name"));
    }
    Some(Ok(Recipe {
        name: package.to_string(),
        description: String::new(),
        target: None,
        pypi: Pypi::default(),
        releases: Vec::new(),
        builds: Vec::new(),
        npm: None,
        apt: Some(Apt {
            packages: vec![package.to_string()],
            binaries,
            link: None,
            check: Vec::new(),
        }),
        verify: VerifySettings::default(),
        origin: "<command line>".into(),
    }))
}

/// `npm:NAME`, `npm:NAME@RANGE` or `npm:NAME@TAG` from the command line:
/// the package with the default runtime (Node).
fn npm_requirement(arg: &str) -> Option<Result<Recipe, RecipeError>> {
    let spec = arg.strip_prefix("npm:")?;
    if let Err(message) = super::npm::parse_spec(spec) {
        return Some(Err(RecipeError::BadRequirement {
            arg: arg.to_string(),
            message,
        }));
    }
    Some(Ok(Recipe::of_npm(
        crate::model::npm::spec_name(spec),
        super::npm::Npm::of_packages(vec![spec.to_string()]),
        "<command line>",
    )))
}

/// A package.json or package-lock.json named on the command line, as a
/// recipe named after its project (else its folder).
pub fn npm_file_recipe(arg: &str) -> Result<Recipe, super::npm::NpmFileError> {
    let path = super::npm::npm_file(arg).unwrap_or_else(|| PathBuf::from(arg));
    let path = path.as_path();
    let file = super::npm::read_npm_file(path)?;
    let folder = super::npm::folder_of(path);
    let name = file.name.clone().unwrap_or_else(|| {
        crate::fsutil::absolute(&folder)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "npm".into())
    });
    let mut npm = super::npm::Npm::of_packages(file.packages);
    npm.tree = file.tree;
    Ok(Recipe::of_npm(&name, npm, &path.display().to_string()))
}

/// Command-line tools people often mean when they type a bare name that
/// PyPI also has (as a library, or something else entirely).
const WELL_KNOWN_TOOLS: &[&str] = &[
    "jq",
    "git",
    "curl",
    "wget",
    "ffmpeg",
    "sqlite3",
    "ripgrep",
    "fd-find",
    "tree",
    "htop",
    "tmux",
    "vim",
    "nano",
    "make",
    "cmake",
    "gcc",
    "zip",
    "unzip",
    "pandoc",
    "graphviz",
    "imagemagick",
    "poppler-utils",
    "tesseract-ocr",
    "lua5.3",
    "lua5.4",
    "nodejs",
    "ruby",
    "perl",
    "bc",
    "file",
    "xz-utils",
    "zstd",
    "p7zip-full",
    "rsync",
    "openssl",
    "ghostscript",
];

/// Where each item of a command line comes from, for the summary and the
/// plan, with a hint for bare names that are likely meant as programs.
pub fn describe_sources(
    args: &[String],
    dir: Option<&Path>,
) -> Vec<(String, String, Option<String>)> {
    // Programs the built-in apt recipes take, for the hint.
    let recipes_binaries: Vec<String> = BUILTIN
        .iter()
        .filter_map(|(n, t)| Recipe::parse(n, t, n).ok())
        .filter_map(|r| r.apt)
        .flat_map(|a| a.binaries)
        .collect();
    let mut out = Vec::new();
    for a in args {
        if a.starts_with("apt:") {
            out.push((a.clone(), "apt".into(), None));
            continue;
        }
        if a.starts_with("npm:") || super::npm::is_npm_file(a) {
            out.push((a.clone(), "npm".into(), None));
            continue;
        }
        if crate::config::requirements::pyproject_path(a).is_some() {
            out.push((a.clone(), "project (pypi)".into(), None));
            continue;
        }
        match find(a, dir) {
            Ok(Some(r)) => {
                let kinds: Vec<&str> = [
                    (!r.pypi.requirements.is_empty(), "pypi"),
                    (!r.releases.is_empty(), "release"),
                    (r.apt.is_some(), "apt"),
                    (!r.builds.is_empty(), "build"),
                    (r.npm.is_some(), "npm"),
                ]
                .into_iter()
                .filter_map(|(has, kind)| has.then_some(kind))
                .collect();
                out.push((a.clone(), format!("recipe ({})", kinds.join(", ")), None));
            }
            _ => {
                let name = a
                    .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
                    .next()
                    .unwrap_or(a);
                let hint = (WELL_KNOWN_TOOLS.contains(&name)
                    || recipes_binaries.iter().any(|b| b == name))
                .then(|| {
                    format!(
                        "`{name}` is read as the PyPI package `{name}`; for the program, write apt:{name}"
                    )
                });
                out.push((a.clone(), "pypi".into(), hint));
            }
        }
    }
    out
}

fn looks_like_recipe_name(arg: &str) -> bool {
    !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Find a recipe by name or path: `*.toml` paths, then `<dir>/<name>.toml`
/// (dir = `--recipes`, else `./recipes`), then built-ins.
pub fn find(arg: &str, dir: Option<&Path>) -> Result<Option<Recipe>, RecipeError> {
    let read = |path: &Path, name: &str| -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Recipe::parse(name, &text, &path.display().to_string())
    };
    if arg.ends_with(".toml") {
        let path = Path::new(arg);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| arg.to_string());
        return read(path, &name).map(Some);
    }
    if !looks_like_recipe_name(arg) {
        return Ok(None);
    }
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("recipes"));
    let local = dir.join(format!("{arg}.toml"));
    if local.is_file() {
        return read(&local, arg).map(Some);
    }
    match BUILTIN.iter().find(|(n, _)| *n == arg) {
        Some((n, text)) => Recipe::parse(n, text, &format!("<built-in recipe {n}>")).map(Some),
        None => Ok(None),
    }
}

/// Turn command-line arguments into one recipe: recipes by name or path,
/// anything else a PEP 508 requirement.
pub fn from_args(args: &[String], dir: Option<&Path>) -> Result<Recipe, RecipeError> {
    let mut recipe: Option<Recipe> = None;
    let mut reqs = Vec::new();
    for a in args {
        if let Some(item) = apt_requirement(a).or_else(|| npm_requirement(a)) {
            let r = item?;
            match &mut recipe {
                Some(acc) => acc.merge(r),
                None => recipe = Some(r),
            }
            continue;
        }
        if super::npm::is_npm_file(a) {
            let r = npm_file_recipe(a)?;
            match &mut recipe {
                Some(acc) => acc.merge(r),
                None => recipe = Some(r),
            }
            continue;
        }
        match find(a, dir)? {
            Some(r) => match &mut recipe {
                Some(acc) => acc.merge(r),
                None => recipe = Some(r),
            },
            None => reqs.push(a.clone()),
        }
    }
    if !reqs.is_empty() {
        let r = Recipe::from_requirements(&reqs)?;
        match &mut recipe {
            Some(acc) => acc.merge(r),
            None => recipe = Some(r),
        }
    }
    recipe.ok_or_else(|| RecipeError::BadRequirement {
        arg: String::new(),
        message: "nothing to bundle".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (name, text) in BUILTIN {
            Recipe::parse(name, text, name).unwrap();
        }
    }

    #[test]
    fn args_mix_recipes_and_requirements() {
        let r = from_args(
            &[
                "sqlite-utils".into(),
                "httpx[http2]<1".into(),
                "rich".into(),
            ],
            Some(Path::new("/nonexistent")),
        )
        .unwrap();
        assert_eq!(r.name, "sqlite-utils+httpx+rich");
        assert_eq!(r.pypi.requirements.len(), 3);
        assert!(from_args(&["not a req !!".into()], None).is_err());
    }
}
