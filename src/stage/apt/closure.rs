//! What `[apt]` and `[[build]]` share: the shared libraries binaries need
//! that the sandbox lacks, copied out of the container, and the binaries
//! made to find them by themselves (RUNPATH, or a wrapper script).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use super::plan::LISTS_OPTS;
use super::{AptError, AptFile, VersionOf};
use crate::check;
use crate::config::target::Target;
use crate::docker::sandbox::{self, APT_ENV};
use crate::docker::Run;
use crate::docker::{sh_quote, ExecOptions};
use crate::model::manifest::{AptPackage, Link};
use crate::report::Reporter;

/// Binaries taken from the image: (name in the recipe, real path).
pub(crate) type Binaries = Vec<(String, String)>;

/// The libraries the binaries need that the sandbox lacks.
pub(crate) struct Closure {
    /// soname → real path in the image.
    pub(crate) libraries: BTreeMap<String, String>,
    /// Real paths of files with a dynamic section (which RUNPATH concerns).
    pub(crate) dynamic: BTreeSet<String>,
}

/// glibc's own libraries: the target always has them, and a copy from
/// another glibc would not work with the target's loader.
pub(super) fn is_glibc(soname: &str) -> bool {
    const GLIBC: &[&str] = &[
        "libc.so",
        "libm.so",
        "libdl.so",
        "libpthread.so",
        "librt.so",
        "libresolv.so",
        "libutil.so",
        "libnsl.so",
        "libanl.so",
        "libmvec.so",
        "libthread_db.so",
        "libBrokenLocale.so",
        "libc_malloc_debug.so",
    ];
    soname.starts_with("ld-linux")
        || soname.starts_with("ld64.so")
        || soname.starts_with("libnss_")
        || GLIBC
            .iter()
            .any(|g| soname == *g || soname.starts_with(&format!("{g}.")))
}

/// DT_NEEDED, recursively, each name resolved inside the container
/// (RUNPATH, then `ldconfig -p`, then the default folders); what the
/// sandbox has and glibc itself stay out.
pub(crate) async fn library_closure(
    c: &impl Run,
    target: &Target,
    binaries: &Binaries,
    system: &BTreeSet<String>,
) -> Result<Closure, AptError> {
    let ldconfig = c
        .run_ok("ldconfig -p", "ldconfig -p", &ExecOptions::default())
        .await?;
    let cache_map: BTreeMap<String, String> = sandbox::parse_ldconfig(&ldconfig.stdout)
        .into_iter()
        .rev()
        .collect();
    let mut closure = Closure {
        libraries: BTreeMap::new(),
        dynamic: BTreeSet::new(),
    };
    let mut queue: VecDeque<(String, String)> = binaries
        .iter()
        .map(|(name, real)| (format!("bin/{name}"), real.clone()))
        .collect();
    while let Some((label, path)) = queue.pop_front() {
        let data = c.read_file(&path).await?;
        let Some(info) = check::read_elf(&label, &data) else {
            continue; // a script: copied as it is
        };
        if info.interpreter.is_some() || info.soname.is_some() {
            closure.dynamic.insert(path.clone());
        }
        let origin = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
        for needed in &info.needed {
            if is_glibc(needed) || system.contains(needed) || closure.libraries.contains_key(needed)
            {
                continue;
            }
            let dirs = search_dirs(target, &info.runpath, origin, cache_map.get(needed));
            let real =
                find_library(c, needed, &dirs)
                    .await?
                    .ok_or_else(|| AptError::LibraryNotFound {
                        library: needed.clone(),
                        needed_by: label.clone(),
                        image: target.image.clone(),
                    })?;
            closure.libraries.insert(needed.clone(), real.clone());
            queue.push_back((format!("lib/{needed}"), real));
        }
    }
    Ok(closure)
}

/// Where the loader would look for a library: the file's RUNPATH (with
/// `$ORIGIN`), the folder `ldconfig -p` names, then the default folders.
pub(super) fn search_dirs(
    target: &Target,
    runpath: &[String],
    origin: &str,
    cached: Option<&String>,
) -> Vec<String> {
    let triple = match target.arch {
        crate::config::target::Arch::X86_64 => "x86_64-linux-gnu",
        crate::config::target::Arch::Aarch64 => "aarch64-linux-gnu",
    };
    let mut dirs: Vec<String> = runpath
        .iter()
        .map(|r| r.replace("$ORIGIN", origin).replace("${ORIGIN}", origin))
        .collect();
    if let Some(p) = cached {
        dirs.push(
            p.rsplit_once('/')
                .map(|(d, _)| d)
                .unwrap_or("/")
                .to_string(),
        );
    }
    for d in ["/lib", "/usr/lib"] {
        dirs.push(format!("{d}/{triple}"));
        dirs.push(d.to_string());
    }
    dirs
}

/// The real path of library `name` in the first of `dirs` that has it.
pub(super) async fn find_library(
    c: &impl Run,
    name: &str,
    dirs: &[String],
) -> Result<Option<String>, AptError> {
    let script = format!(
        "for d in {}; do if [ -e \"$d/{n}\" ]; then readlink -f \"$d/{n}\"; exit 0; fi; done; exit 1",
        dirs.iter().map(|d| sh_quote(d)).collect::<Vec<_>>().join(" "),
        n = name.replace(['"', '$', '`', '\\'], "")
    );
    let out = c.exec(&script, &ExecOptions::default()).await?;
    let real = out.stdout.trim().to_string();
    Ok((out.code == 0 && !real.is_empty()).then_some(real))
}

/// Copy the files into a folder of the container, set RUNPATH with
/// patchelf (or fall back to wrappers), and copy them out into `root`.
pub(crate) async fn stage_and_link(
    c: &impl Run,
    link: Option<Link>,
    binaries: &Binaries,
    closure: &Closure,
    root: &Path,
    reporter: &dyn Reporter,
) -> Result<Option<Link>, AptError> {
    let root_opts = ExecOptions::default();
    let mut stage = String::from(
        "set -e; rm -rf /tmp/bundle-out; mkdir -p /tmp/bundle-out/bin /tmp/bundle-out/lib; cd /tmp/bundle-out\n",
    );
    for (name, real) in binaries {
        stage.push_str(&format!(
            "cp {} bin/{n}; chmod 755 bin/{n}\n",
            sh_quote(real),
            n = sh_quote(name)
        ));
    }
    for (soname, real) in &closure.libraries {
        stage.push_str(&format!(
            "cp {} lib/{n}; chmod 644 lib/{n}\n",
            sh_quote(real),
            n = sh_quote(soname)
        ));
    }
    c.run_ok(&stage, "staging the files", &root_opts).await?;
    let link = if closure.libraries.is_empty() {
        None
    } else if link == Some(Link::Wrapper) {
        Some(Link::Wrapper)
    } else {
        let out = c.exec(&patch_script(binaries, closure), &root_opts).await?;
        if out.code == 0 {
            tracing::debug!("patchelf: {}", out.combined());
            Some(Link::Runpath)
        } else {
            reporter.warn(&format!(
                "cannot set RUNPATH with patchelf ({}); using wrapper scripts instead",
                out.combined().lines().last().unwrap_or("")
            ));
            // Start again from unpatched copies.
            c.run_ok(&stage, "staging the files", &root_opts).await?;
            Some(Link::Wrapper)
        }
    };
    let members = c.copy_out_members("/tmp/bundle-out").await?;
    let mut expected: BTreeMap<String, u32> = BTreeMap::new();
    for (name, _) in binaries {
        expected.insert(format!("bin/{name}"), 0o755);
    }
    for soname in closure.libraries.keys() {
        expected.insert(format!("lib/{soname}"), 0o644);
    }
    unpack(members, root, &expected)?;
    Ok(link)
}

/// patchelf commands: `$ORIGIN/../lib` on binaries, `$ORIGIN` on libraries.
pub(super) fn patch_script(binaries: &Binaries, closure: &Closure) -> String {
    let mut patch = format!(
        "set -e; {APT_ENV}; command -v patchelf >/dev/null || $APT {LISTS_OPTS} install -y --no-download patchelf >/dev/null; cd /tmp/bundle-out\n"
    );
    for (name, real) in binaries {
        if closure.dynamic.contains(real) {
            patch.push_str(&format!(
                "patchelf --set-rpath '$ORIGIN/../lib' bin/{}\n",
                sh_quote(name)
            ));
        }
    }
    for (soname, real) in &closure.libraries {
        if closure.dynamic.contains(real) {
            patch.push_str(&format!(
                "patchelf --set-rpath '$ORIGIN' lib/{}\n",
                sh_quote(soname)
            ));
        }
    }
    patch
}

/// The manifest rows of what was staged (writing wrappers where needed).
pub(crate) fn rows(
    root: &Path,
    binaries: &Binaries,
    closure: &Closure,
    link: Option<Link>,
    version_of: &VersionOf,
) -> Result<Vec<AptFile>, AptError> {
    let row = |path: String, library: bool, real: &String, link: Option<Link>| {
        let (package, version) = version_of(real);
        AptFile {
            path,
            library,
            from: real.clone(),
            package,
            version,
            link,
        }
    };
    let mut files = Vec::new();
    for (name, real) in binaries {
        let dynamic = closure.dynamic.contains(real);
        let mut path = format!("bin/{name}");
        if link == Some(Link::Wrapper) && dynamic {
            path = wrap(root, name)?;
            files.push(row(format!("libexec/{name}"), false, real, None));
        }
        files.push(row(path, false, real, if dynamic { link } else { None }));
    }
    for (soname, real) in &closure.libraries {
        files.push(row(format!("lib/{soname}"), true, real, None));
    }
    Ok(files)
}

/// The package owning each path (`dpkg -S`), trying the path and, for
/// merged-/usr systems, its other spelling.
/// The Debian package that owns `path` (from [`owners`]) and its installed
/// version (from the dpkg list taken after the install), when known.
pub(crate) fn owner_and_version(
    owners: &BTreeMap<String, String>,
    installed: &BTreeMap<String, AptPackage>,
    path: &str,
) -> (Option<String>, Option<String>) {
    let pkg = owners.get(path).cloned();
    let version = pkg
        .as_ref()
        .and_then(|p| installed.get(p))
        .map(|p| p.version.clone());
    (pkg, version)
}

pub(crate) async fn owners(
    c: &impl Run,
    paths: &[&String],
) -> Result<BTreeMap<String, String>, AptError> {
    let mut script = String::new();
    for p in paths {
        let alt = p
            .strip_prefix("/usr")
            .map(str::to_string)
            .unwrap_or_else(|| format!("/usr{p}"));
        script.push_str(&format!(
            "o=$(dpkg -S {q} 2>/dev/null || dpkg -S {a} 2>/dev/null || true); printf '%s\\t%s\\n' {q} \"$(echo \"$o\" | head -n1 | cut -d: -f1)\"\n",
            q = sh_quote(p),
            a = sh_quote(&alt)
        ));
    }
    let out = c
        .run_ok(&script, "dpkg -S", &ExecOptions::default())
        .await?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, o)| !o.is_empty())
        .map(|(p, o)| (p.to_string(), o.to_string()))
        .collect())
}

/// Write the copied-out folder's members: exactly the expected regular files.
pub(super) fn unpack(
    members: crate::docker::Members,
    root: &Path,
    expected: &BTreeMap<String, u32>,
) -> Result<(), AptError> {
    let bad = |message: String| AptError::CopyOut {
        path: "/tmp/bundle-out".into(),
        message,
    };
    let mut seen = BTreeSet::new();
    for (name, data) in members {
        let Some(rel) = name.strip_prefix("bundle-out/") else {
            continue;
        };
        let Some(mode) = expected.get(rel) else {
            continue;
        };
        let Some(data) = data else {
            return Err(bad(format!("{rel} is not a regular file")));
        };
        let dest = root.join(rel);
        let io = |source| AptError::Io {
            path: dest.clone(),
            source,
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&dest, &data).map_err(io)?;
        crate::fsutil::set_mode(&dest, *mode).map_err(io)?;
        seen.insert(rel.to_string());
    }
    if let Some(missing) = expected.keys().find(|k| !seen.contains(*k)) {
        return Err(bad(format!("{missing} is missing from the copy")));
    }
    Ok(())
}

/// Move `bin/<name>` to `libexec/<name>` and put a wrapper script in its
/// place that points the loader at `lib/`. Returns the wrapper's path.
pub(super) fn wrap(root: &Path, name: &str) -> Result<String, AptError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AptError::Io { path, source }
    };
    let libexec = root.join("libexec");
    std::fs::create_dir_all(&libexec).map_err(io(&libexec))?;
    let real = libexec.join(name);
    let bin = root.join("bin").join(name);
    std::fs::rename(&bin, &real).map_err(io(&real))?;
    let script = format!(
        "#!/bin/sh\n# Written by bundle: run libexec/{name} with the bundle's lib/.\n\
         here=$(dirname \"$(readlink -f \"$0\")\")\n\
         LD_LIBRARY_PATH=\"$here/../lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\" exec \"$here/../libexec/{name}\" \"$@\"\n"
    );
    std::fs::write(&bin, script).map_err(io(&bin))?;
    crate::fsutil::set_mode(&bin, 0o755).map_err(io(&bin))?;
    Ok(format!("bin/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{Answer, FakeContainer};
    use crate::stage::apt::test_support::{block_on, recipe};

    fn closure() -> (Binaries, Closure) {
        let binaries = vec![("lua5.3".to_string(), "/usr/bin/lua5.3".to_string())];
        let closure = Closure {
            libraries: BTreeMap::from([(
                "libreadline.so.8".to_string(),
                "/lib/x86_64-linux-gnu/libreadline.so.8.1".to_string(),
            )]),
            dynamic: BTreeSet::from([
                "/usr/bin/lua5.3".to_string(),
                "/lib/x86_64-linux-gnu/libreadline.so.8.1".to_string(),
            ]),
        };
        (binaries, closure)
    }

    fn staged() -> FakeContainer {
        FakeContainer::new()
            .file("/tmp/bundle-out/bin/lua5.3", b"\x7fELF lua")
            .file("/tmp/bundle-out/lib/libreadline.so.8", b"\x7fELF readline")
    }

    /// `stage_and_link` for lua5.3 and libreadline, with `link` from the recipe.
    fn stage(c: &FakeContainer, link: Option<Link>, root: &Path) -> Option<Link> {
        let (binaries, closure) = closure();
        block_on(stage_and_link(
            c,
            recipe(link).link,
            &binaries,
            &closure,
            root,
            &crate::report::NoReporter,
        ))
        .unwrap()
    }

    #[test]
    fn runpath_is_set_and_a_failing_patchelf_falls_back_to_wrappers() {
        let (binaries, closure) = closure();
        let root = tempfile::tempdir().unwrap();
        let c = staged();
        let link = stage(&c, None, root.path());
        assert_eq!(link, Some(Link::Runpath));
        assert_eq!(c.ran("patchelf --set-rpath '$ORIGIN/../lib' bin/lua5.3"), 1);
        assert_eq!(
            std::fs::read(root.path().join("bin/lua5.3")).unwrap(),
            b"\x7fELF lua"
        );

        let c = staged().answer(
            "patchelf",
            vec![Answer::fail(1, "patchelf: cannot find section")],
        );
        let root = tempfile::tempdir().unwrap();
        let link = stage(&c, None, root.path());
        assert_eq!(link, Some(Link::Wrapper));
        assert_eq!(
            c.ran("mkdir -p /tmp/bundle-out/bin"),
            2,
            "staged again, unpatched"
        );
        let version_of = |_: &str| (Some("lua5.3".to_string()), Some("5.3.3".to_string()));
        let files = rows(root.path(), &binaries, &closure, link, &version_of).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["libexec/lua5.3", "bin/lua5.3", "lib/libreadline.so.8"]
        );
        let wrapper = std::fs::read_to_string(root.path().join("bin/lua5.3")).unwrap();
        assert!(wrapper.starts_with("#!/bin/sh"), "{wrapper}");

        // The recipe can ask for wrappers: patchelf is never run.
        let c = staged();
        let root = tempfile::tempdir().unwrap();
        let link = stage(&c, Some(Link::Wrapper), root.path());
        assert_eq!(link, Some(Link::Wrapper));
        assert_eq!(c.ran("patchelf"), 0);
    }

    #[test]
    fn glibc_libraries_are_never_bundled() {
        for l in [
            "libc.so.6",
            "libm.so.6",
            "libdl.so.2",
            "libpthread.so.0",
            "librt.so.1",
            "ld-linux-x86-64.so.2",
            "ld-linux-aarch64.so.1",
            "libnss_files.so.2",
        ] {
            assert!(is_glibc(l), "{l}");
        }
        for l in [
            "libreadline.so.8",
            "libcrypto.so.1.1",
            "libmagic.so.1",
            "libcurl.so.4",
        ] {
            assert!(!is_glibc(l), "{l}");
        }
    }
}
