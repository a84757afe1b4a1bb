//! The container run: install the packages from the files put in place,
//! record what changed, and find the binaries the recipe names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::closure::{library_closure, owner_and_version, owners, rows, stage_and_link, Binaries};
use super::plan::{apt_outcome, LISTS_OPTS};
use super::{quoted, AptError, AptFile};
use crate::config::recipe::Apt;
use crate::config::target::Target;
use crate::docker::sandbox::APT_ENV;
use crate::docker::Run;
use crate::docker::{sh_quote, ExecOptions};
use crate::model::manifest::AptPackage;
use crate::report::{Reporter, Step};

pub(crate) fn dpkg_list(text: &str) -> BTreeMap<String, AptPackage> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            let (package, version, architecture, status) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            status.ends_with(" installed").then(|| {
                (
                    package.to_string(),
                    AptPackage {
                        package: package.to_string(),
                        version: version.to_string(),
                        architecture: architecture.to_string(),
                        deb: None,
                        sha256: None,
                    },
                )
            })
        })
        .collect()
}

pub(crate) const DPKG_QUERY: &str =
    "dpkg-query -W -f='${Package}\\t${Version}\\t${Architecture}\\t${Status}\\n'";

/// The apt stage in one container: install and record, locate the
/// binaries, walk their library closure, stage and link, copy out, and
/// list the rows for the manifest.
pub(super) async fn build_in(
    c: &impl Run,
    target: &Target,
    apt: &Apt,
    root: &Path,
    system: &BTreeSet<String>,
    reporter: &dyn Reporter,
) -> Result<(Vec<AptPackage>, Vec<AptFile>), AptError> {
    let (after, installed) = install_and_record(c, apt, reporter).await?;
    let step = Step::start(reporter, "binaries and library closure");
    let binaries = locate_binaries(c, apt, &target.image).await?;
    let closure = library_closure(c, target, &binaries, system).await?;
    drop(step);
    let sources: Vec<&String> = binaries
        .iter()
        .map(|(_, p)| p)
        .chain(closure.libraries.values())
        .collect();
    let owners = owners(c, &sources).await?;
    let step = Step::start(reporter, "staging, RUNPATH and copy-out");
    let link = stage_and_link(c, apt.link, &binaries, &closure, root, reporter).await?;
    drop(step);
    let version_of = |path: &str| owner_and_version(&owners, &after, path);
    let files = rows(root, &binaries, &closure, link, &version_of)?;
    Ok((installed, files))
}

/// `apt-get install` the packages; the packages the install added or
/// changed, from `dpkg-query` before and after (and the whole list after).
pub(super) async fn install_and_record(
    c: &impl Run,
    apt: &Apt,
    reporter: &dyn Reporter,
) -> Result<(BTreeMap<String, AptPackage>, Vec<AptPackage>), AptError> {
    let root_opts = ExecOptions::default();
    let packages = quoted(&apt.packages);
    let before = dpkg_list(&c.run_ok(DPKG_QUERY, "dpkg-query", &root_opts).await?.stdout);
    let what = format!("apt-get install {}", apt.packages.join(" "));
    let step = Step::start(reporter, &what);
    // From the lists and .deb files put in place: no network, no update.
    let out = c
        .exec(
            &format!("set -e; {APT_ENV}; $APT {LISTS_OPTS} install -y --no-download {packages}"),
            &root_opts,
        )
        .await?;
    drop(step);
    apt_outcome(&out, c.image(), what)?;
    let after = dpkg_list(&c.run_ok(DPKG_QUERY, "dpkg-query", &root_opts).await?.stdout);
    let installed = after
        .iter()
        .filter(|(name, p)| before.get(*name).map(|b| &b.version) != Some(&p.version))
        .map(|(_, p)| p.clone())
        .collect();
    Ok((after, installed))
}

/// Each of the recipe's binaries, through PATH, symlinks and alternatives.
/// A missing one lists the programs the packages did install.
pub(super) async fn locate_binaries(
    c: &impl Run,
    apt: &Apt,
    image: &str,
) -> Result<Binaries, AptError> {
    let root_opts = ExecOptions::default();
    let mut binaries = Vec::new();
    for b in &apt.binaries {
        let out = c
            .exec(
                &format!(
                    "p=$(command -v {b}) && case \"$p\" in /*) readlink -f \"$p\";; *) exit 1;; esac",
                    b = sh_quote(b)
                ),
                &root_opts,
            )
            .await?;
        let real = out.stdout.trim().to_string();
        if out.code == 0 && !real.is_empty() {
            binaries.push((b.clone(), real));
            continue;
        }
        let listed = c
            .exec(
                &format!(
                    "dpkg -L {} 2>/dev/null | grep -E '/s?bin/[^/]+$' | sort -u",
                    quoted(&apt.packages)
                ),
                &root_opts,
            )
            .await?;
        return Err(AptError::BinaryNotFound {
            binary: b.clone(),
            image: image.to_string(),
            packages: apt.packages.join(", "),
            candidates: listed
                .stdout
                .lines()
                .filter_map(|l| l.rsplit('/').next())
                .map(str::to_string)
                .collect(),
        });
    }
    Ok(binaries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{Answer, FakeContainer};
    use crate::stage::apt::test_support::{block_on, recipe};

    const STATUS: &str = "install ok installed";

    #[test]
    fn the_install_is_recorded_as_what_changed() {
        let before = format!("libc6\t2.31-13\tamd64\t{STATUS}\n");
        let after = format!(
            "libc6\t2.31-13\tamd64\t{STATUS}\nlua5.3\t5.3.3-1.1\tamd64\t{STATUS}\nliblua5.3-0\t5.3.3-1.1\tamd64\t{STATUS}\n"
        );
        let c = FakeContainer::new()
            .answer("dpkg-query", vec![Answer::ok(&before), Answer::ok(&after)]);
        let (_, installed) = block_on(install_and_record(
            &c,
            &recipe(None),
            &crate::report::NoReporter,
        ))
        .unwrap();
        let names: Vec<&str> = installed.iter().map(|p| p.package.as_str()).collect();
        assert_eq!(names, ["liblua5.3-0", "lua5.3"]);
        // From the lists and .deb files put in place: nothing is fetched.
        assert_eq!(c.ran("install -y --no-download lua5.3"), 1);
        assert_eq!(c.ran("update"), 0);
    }

    #[test]
    fn binaries_are_found_through_path_or_listed_when_missing() {
        let c =
            FakeContainer::new().answer("command -v lua5.3", vec![Answer::ok("/usr/bin/lua5.3\n")]);
        let found = block_on(locate_binaries(&c, &recipe(None), "img")).unwrap();
        assert_eq!(
            found,
            [("lua5.3".to_string(), "/usr/bin/lua5.3".to_string())]
        );

        let c = FakeContainer::new()
            .answer("command -v", vec![Answer::fail(1, "")])
            .answer(
                "dpkg -L",
                vec![Answer::ok("/usr/bin/lua5.3\n/usr/bin/luac5.3\n")],
            );
        let e = block_on(locate_binaries(&c, &recipe(None), "img")).unwrap_err();
        match e {
            AptError::BinaryNotFound { candidates, .. } => {
                assert_eq!(candidates, ["lua5.3", "luac5.3"])
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn dpkg_query_lines() {
        let text = "lua5.3\t5.3.3-1.1+deb11u1\tamd64\tinstall ok installed\n\
                    gone\t1\tamd64\tdeinstall ok config-files\n";
        let m = dpkg_list(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m["lua5.3"].version, "5.3.3-1.1+deb11u1");
    }
}
