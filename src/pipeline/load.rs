//! The inputs, read and checked: the recipe (items, `-r` files, a
//! project), the target, the bundle's name and format, and a lock.

use std::path::{Path, PathBuf};

use super::Options;
use crate::assemble::Format;
use crate::config::recipe::Recipe;
use crate::config::target::{Target, DEFAULT_TARGET};
use crate::model::plan::Plan;
use crate::Error;

/// Read the recipe(s) and the target the options name.
pub fn load(options: &Options) -> Result<(Recipe, Target), Error> {
    if options.args.is_empty() && options.requirement_files.is_empty() {
        return Err(Error::Usage(
            "name at least one recipe or requirement, e.g. `bundle build sqlite-utils`, or pass -r requirements.txt".into(),
        ));
    }
    let mut recipe = recipe_of(options)?;
    recipe.name = match &options.name {
        Some(n) => n.clone(),
        None => default_name(&recipe.name),
    };
    check_name(&recipe.name)?;
    let target_name = options
        .target
        .clone()
        .or_else(|| recipe.target.clone())
        .unwrap_or_else(|| DEFAULT_TARGET.to_string());
    let target = Target::load(&target_name)?;
    if let Some((file, spec)) = &recipe.pypi.requires_python {
        if target.has_python && crate::resolve::index::python_excluded(spec, &target.python) {
            return Err(Error::Usage(format!(
                "{file}: requires-python `{spec}` excludes Python {} of target {}: build for a target whose Python it allows (--target)",
                target.python, target.name
            )));
        }
    }
    if !target.has_python && !recipe.pypi.requirements.is_empty() {
        return Err(Error::Usage(format!(
            "target {} has no Python (python = \"none\"), so it cannot install the Python packages {} asks for ({}); build them for a target with Python, or bundle only releases and apt packages for this one",
            target.name,
            recipe.name,
            recipe
                .pypi
                .requirements
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok((recipe, target))
}

/// The recipe the options name: recipes and requirements on the command
/// line, projects (`.`, `pyproject.toml`), `-r` files, `-c` constraints,
/// `--exclude-newer`.
/// The requirement that bundles a project itself: `name[extras] @` its
/// folder packed as an sdist (in the cache), which is built in the target's
/// image; its dependencies then come from the built wheel, dynamic or not.
pub(super) fn project_requirement(
    project: crate::config::requirements::Project,
    pyproject: &Path,
    options: &Options,
) -> Result<pep508_rs::Requirement<pep508_rs::VerbatimUrl>, Error> {
    use crate::config::requirements::RequirementsError;
    let bad = |message: String| RequirementsError::Pyproject {
        file: project.file.clone(),
        message,
    };
    let version = project.version.clone().ok_or_else(|| {
        bad("its version is dynamic (the build backend computes it), and bundle builds a project whose [project].version is set: set it, or build the wheel and name it (`name @ ./dist/name-1.0-py3-none-any.whl`), or pass --no-install-project to bundle its dependencies only".into())
    })?;
    let dir = match pyproject.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (packed, sha256) = crate::config::project::pack(
        dir,
        &project.name,
        &version,
        &options.cache_dir.join("projects"),
    )?;
    let url = reqwest::Url::from_file_path(crate::fsutil::absolute(&packed))
        .map_err(|()| bad(format!("{} is not an absolute path", packed.display())))?;
    let extras = if options.extras.is_empty() {
        String::new()
    } else {
        format!("[{}]", options.extras.join(","))
    };
    // The pack's hash in the requirement: a lock names the content it was
    // made from, and `--locked` refuses a project changed since.
    let text = format!("{}{extras} @ {url}#sha256={sha256}", project.name);
    std::str::FromStr::from_str(&text)
        .map_err(|e: pep508_rs::Pep508Error| bad(format!("`{text}`: {e}")).into())
}

pub(super) fn recipe_of(options: &Options) -> Result<Recipe, Error> {
    use crate::config::requirements::{pyproject_path, read_pyproject, FileRequirements};
    let (projects, items): (Vec<&String>, Vec<&String>) = options
        .args
        .iter()
        .partition(|a| pyproject_path(a).is_some());
    let mut parts: Vec<Recipe> = Vec::new();
    if !items.is_empty() {
        let items: Vec<String> = items.into_iter().cloned().collect();
        parts.push(crate::config::items::from_args(
            &items,
            options.recipes_dir.as_deref(),
        )?);
    }
    for p in projects {
        let path = pyproject_path(p).expect("partitioned on it");
        let project = read_pyproject(&path, &options.extras)?;
        let name = project.name.clone();
        let requires_python = project.requires_python.clone();
        let requirements = if options.install_project {
            vec![project_requirement(project, &path, options)?]
        } else {
            project.dependencies_only()?
        };
        let mut recipe = Recipe::of_requirements(&name, requirements, &path.display().to_string());
        recipe.pypi.requires_python = requires_python.map(|r| (path.display().to_string(), r));
        parts.push(recipe);
    }
    if !options.extras.is_empty() && parts.iter().all(|r| !r.origin.ends_with("pyproject.toml")) {
        return Err(Error::Usage(
            "--extra applies to a project: name it (`bundle build . --extra NAME`)".into(),
        ));
    }
    let files = FileRequirements::read(&options.requirement_files, &options.constraint_files)?;
    if !files.requirements.is_empty() {
        let name = options
            .requirement_files
            .first()
            .and_then(|f| f.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "requirements".into());
        parts.push(Recipe::of_requirements(
            &name,
            files.requirements,
            "<requirements file>",
        ));
    }
    let mut parts = parts.into_iter();
    let mut recipe = parts.next().ok_or_else(|| {
        Error::Usage("nothing to bundle: the requirements files list no requirement".into())
    })?;
    for p in parts {
        recipe.merge(p);
    }
    recipe.pypi.constraints.extend(files.constraints);
    for (name, hashes) in files.hashes {
        recipe.pypi.hashes.entry(name).or_default().extend(hashes);
    }
    if let Some(date) = &options.exclude_newer {
        recipe.pypi.exclude_newer = Some(date.clone());
        if let Some(npm) = &mut recipe.npm {
            npm.exclude_newer = Some(date.clone());
        }
    }
    if let Some(sdists) = options.sdists {
        recipe.pypi.sdists = sdists;
    }
    Ok(recipe)
}

/// The archive format for a target when the user chose none: a zip, which
/// PROMPT's Python unpacks; for a target without Python, a .tar.gz, which
/// its `tar` unpacks.
pub fn default_format(target: &Target) -> Format {
    if target.has_python {
        Format::Zip
    } else {
        Format::TarGz
    }
}

/// Whether the target can unpack the format: without Python, a zip needs
/// `unzip` among its system packages.
pub(super) fn check_format(format: Format, target: &Target) -> Result<(), Error> {
    if format == Format::Zip
        && !target.has_python
        && !target.system_packages.iter().any(|p| p == "unzip")
    {
        return Err(Error::Usage(format!(
            "target {} has neither Python nor unzip to unpack a .zip: use --format tar.gz (its tar unpacks that) or --format dir",
            target.name
        )));
    }
    Ok(())
}

/// The longest bundle name: it becomes a folder and archive names with
/// suffixes (`.zip.001`), which must fit in a file name.
pub const MAX_NAME: usize = 100;

/// A character a bundle name may hold.
pub(super) fn plain_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')
}

/// The name made up from what was asked for (`httpx+rich`), always valid:
/// other characters become `-`, and a long one keeps its first names with
/// `+N-more` (or, for one long name, its start and a digest). Only a
/// user's own `--name` can be refused.
pub fn default_name(made: &str) -> String {
    const SHORT: usize = 60;
    const KEEP: usize = 40;
    let clean: String = made
        .chars()
        .map(|c| if plain_name_char(c) { c } else { '-' })
        .collect();
    let clean = clean.trim_start_matches(['.', '-']);
    if clean.is_empty() {
        return "bundle".into();
    }
    if clean.len() <= SHORT {
        return clean.to_string();
    }
    let parts: Vec<&str> = clean.split('+').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return "bundle".into();
    }
    let mut out = String::new();
    let mut used = 0;
    for p in &parts {
        let len = out.len() + p.len() + usize::from(!out.is_empty());
        if len > KEEP {
            break;
        }
        if !out.is_empty() {
            out.push('+');
        }
        out.push_str(p);
        used += 1;
    }
    if used == 0 {
        let digest = crate::fetch::cache::sha256_hex(clean.as_bytes());
        out = format!("{}-{}", &parts[0][..KEEP], &digest[..8]);
        used = 1;
    }
    if used < parts.len() {
        out.push_str(&format!("+{}-more", parts.len() - used));
    }
    out
}

/// The name becomes a folder, an archive name, an argument and part of
/// PROMPT.txt's code: a plain file name that no tool reads as an option.
pub(super) fn check_name(name: &str) -> Result<(), Error> {
    let plain = plain_name_char;
    let why = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.starts_with(['.', '-']) {
        Some("it starts with `.` or `-`".into())
    } else if !name.chars().all(plain) {
        Some("only letters, digits and . _ + - are allowed".into())
    } else if name.len() > MAX_NAME {
        Some(format!(
            "it is {} characters long; at most {MAX_NAME}",
            name.len()
        ))
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => {
            let shown: String = name
                .chars()
                .take(60)
                .flat_map(char::escape_default)
                .collect();
            Err(Error::Usage(format!(
                "`{shown}` cannot be used as a bundle name: {why}; pass --name NAME"
            )))
        }
    }
}

/// Whether a locked version still fits what the recipe asks for: the same
/// version, `latest`, or a semver requirement it matches.
pub(super) fn version_fits(asked: &str, locked: &str) -> bool {
    if asked == locked || asked == "latest" {
        return true;
    }
    match (
        semver::VersionReq::parse(asked),
        semver::Version::parse(locked),
    ) {
        (Ok(req), Ok(v)) => req.matches(&v),
        _ => false,
    }
}

/// `build --locked --name NAME` with no items: what `NAME.lock.json` holds,
/// for its own target unless `--target` names one.
pub fn load_lock_only(options: &Options) -> Result<(Recipe, Target), Error> {
    let name = options.name.clone().ok_or_else(|| {
        Error::Usage(
            "--locked with no items builds NAME.lock.json: pass --name NAME, or the items it was locked from".into(),
        )
    })?;
    check_name(&name)?;
    let lock = PathBuf::from(format!("{name}.lock.json"));
    if !lock.is_file() {
        return Err(Error::Usage(format!(
            "--locked: there is no {} here; run `bundle lock` first",
            lock.display()
        )));
    }
    let target_name = options
        .target
        .clone()
        .or_else(|| lock_target(&lock))
        .unwrap_or_else(|| DEFAULT_TARGET.to_string());
    let target = Target::load(&target_name)?;
    let recipe = Recipe::of_requirements(&name, Vec::new(), &lock.display().to_string());
    Ok((recipe, target))
}

/// Read a lock file (a saved Plan) and check it fits the request (when
/// there is one: `locked_as_is` builds it as it stands).
pub(super) fn read_lock(
    path: &Path,
    recipe: &Recipe,
    target: &Target,
    locked_as_is: bool,
) -> Result<Plan, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "--locked: cannot read {}: {e}; run `bundle lock` first",
            path.display()
        ))
    })?;
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{}: not a bundle lock file: {e}", path.display())))?;
    let requirements: Vec<String> = recipe
        .pypi
        .requirements
        .iter()
        .map(|r| r.to_string())
        .collect();
    // What changed, named: the requirements (of the recipe, a -r file or
    // the command line), or a table of the recipe.
    let mut changed = Vec::new();
    if plan.requirements != requirements && !locked_as_is {
        changed.push(
            if recipe.origin.ends_with("pyproject.toml")
                && without_hashes(&plan.requirements) == without_hashes(&requirements)
            {
                // Only the pack's hash differs: the project's own files.
                format!("the files of the project ({})", recipe.origin)
            } else {
                format!(
                    "the requirements from {} (now {}; locked {})",
                    recipe.origin,
                    list_or_none(&requirements),
                    list_or_none(&plan.requirements)
                )
            },
        );
    }
    if !locked_as_is {
        for what in changed_tables(recipe, &plan) {
            changed.push(format!("{what} (in {})", recipe.origin));
        }
    }
    if !changed.is_empty() {
        return Err(Error::Usage(format!(
            "{} is out of date: {} changed since it was locked; run `bundle lock` again",
            path.display(),
            changed.join("; ")
        )));
    }
    if plan.target != target.summary() {
        return Err(Error::Usage(format!(
            "{} was locked for target {}, not {}; run `bundle lock` again",
            path.display(),
            plan.target.name,
            target.name
        )));
    }
    if let Some(locked) = &plan.profile {
        let now = target.profile();
        if now.digest != locked.digest {
            return Err(Error::Usage(format!(
                "{} is out of date: target {} changed since it was locked ({}); run `bundle lock` again",
                path.display(),
                target.name,
                now.changes_from(locked).join("; ")
            )));
        }
    }
    Ok(plan)
}

/// The recipe's tables that no longer match what the lock holds.
fn changed_tables(recipe: &Recipe, plan: &Plan) -> Vec<&'static str> {
    let same_releases = recipe.releases.len() == plan.releases.len()
        && recipe
            .releases
            .iter()
            .zip(&plan.releases)
            .all(|(r, l)| r.name == l.name && version_fits(&r.version, &l.version));
    let same_builds = recipe.builds.len() == plan.builds.len()
        && recipe.builds.iter().zip(&plan.builds).all(|(r, l)| {
            r.name() == l.name
                && r.packages == l.packages
                && r.script == l.script
                && r.binaries == l.binaries
                && r.features == l.features
                && version_fits(r.version.as_deref().unwrap_or("*"), &l.version)
        });
    let same_apt = plan.apt.as_ref().map(|a| (&a.packages, &a.binaries))
        == recipe.apt.as_ref().map(|a| (&a.packages, &a.binaries));
    // (The runtime's range as the plan keeps it: parsed and trimmed.)
    let same_npm = plan.npm.as_ref().map(|n| {
        (
            &n.packages,
            n.runtime.kind,
            n.runtime.range.clone(),
            &n.binaries,
        )
    }) == recipe.npm.as_ref().map(|n| {
        let range = crate::config::npm::Range::parse(&n.runtime_range)
            .map_or_else(|_| n.runtime_range.clone(), |r| r.as_str().to_string());
        (&n.packages, n.runtime, range, &n.binaries)
    });
    [
        (same_releases, "its [[release]] tables"),
        (same_apt, "its [apt] table"),
        (same_builds, "its [[build]] tables"),
        (same_npm, "its npm packages or runtime"),
    ]
    .into_iter()
    .filter_map(|(same, what)| (!same).then_some(what))
    .collect()
}

/// Requirements without their URLs (`name @ URL` as `name @`), to tell a
/// project packed anew from a changed request.
fn without_hashes(requirements: &[String]) -> Vec<&str> {
    requirements
        .iter()
        .map(|r| r.split_once(" @ ").map_or(r.as_str(), |(name, _)| name))
        .collect()
}

/// `a, b`, or `none`.
pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The target a lock file was made for, as it was named (`--locked`
/// builds for it unless `--target` says otherwise).
pub fn lock_target(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let plan: Plan = serde_json::from_str(&text).ok()?;
    plan.profile.map(|p| p.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_up_name_is_always_a_valid_one() {
        assert_eq!(default_name("httpx+rich"), "httpx+rich");
        let many: Vec<String> = (0..12)
            .map(|i| format!("package-with-a-long-name-{i}"))
            .collect();
        let name = default_name(&many.join("+"));
        assert_eq!(name, "package-with-a-long-name-0+11-more");
        assert!(check_name(&name).is_ok());
        let long = "x".repeat(150);
        let name = default_name(&format!("{long}+rich"));
        assert!(name.starts_with(&"x".repeat(40)), "{name}");
        assert!(name.ends_with("+1-more"), "{name}");
        assert!(check_name(&name).is_ok(), "{name}");
        assert_eq!(default_name("my recipe"), "my-recipe");
        assert_eq!(default_name("..."), "bundle");
        assert_eq!(default_name(&"+".repeat(70)), "bundle");
        // A user's own name is checked as given.
        assert!(check_name(&"y".repeat(MAX_NAME + 1)).is_err());
    }
}
