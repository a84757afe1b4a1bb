//! One `[[build]]` in a container of the target's build image: its inputs
//! fetched and put in place, its script run offline with `$PREFIX`, and
//! the programs it installed located and held inside `$PREFIX`.

use std::io::Read;
use std::path::Path;

use super::toolchain::{cache_tmp, toolchain_tar, Toolchain};
use super::{BuildError, PREFIX, RUST_DIR};
use crate::config::target::Target;
use crate::docker::sandbox;
use crate::docker::{sh_quote, ContainerSpec, DockerError, Engine, ExecOptions, Run};
use crate::fetch::{Blob, Fetcher};
use crate::model::plan::{ArchiveKind, BuildSource, PlannedBuild};
use crate::report::{Reporter, Step};
use crate::stage::apt::{self, AptBuild};
use crate::stage::crates::{self, Registry};

/// The packages of the build image: the recipe's, and for crates a C
/// compiler and the C library's headers to link with.
pub(super) fn build_packages(planned: &PlannedBuild) -> Vec<String> {
    let mut packages = planned.packages.clone();
    if matches!(planned.source, BuildSource::Crate { .. }) {
        packages.extend(["gcc".to_string(), "libc6-dev".to_string()]);
    }
    packages.sort();
    packages.dedup();
    packages
}

/// A build from scratch: fetch, prepare the images, build in a container
/// with no network, take the programs and their libraries.
pub(super) async fn fresh(
    planned: &PlannedBuild,
    target: &Target,
    toolchain: Option<&Toolchain>,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
    root: &Path,
) -> Result<AptBuild, BuildError> {
    let inputs = fetch_inputs(planned, fetcher).await?;
    let engine = Engine::connect("[[build]] recipes need").await?;
    let step = Step::start(reporter, "sandbox image and its libraries");
    let sandbox_tag = sandbox::sandbox_image(&engine, target, reporter).await?;
    let system =
        sandbox::libraries(&engine, &sandbox_tag, &target.platform, fetcher.cache()).await?;
    drop(step);
    let mut image =
        sandbox::image_with(&engine, target, &build_packages(planned), reporter).await?;
    if let Some(t) = toolchain {
        let tmp = cache_tmp(fetcher)?;
        let sysroot = t.sysroot.clone();
        image = sandbox::image_with_rust(
            &engine,
            &image,
            &target.platform,
            &|| toolchain_tar(&sysroot, &tmp),
            RUST_DIR,
            &t.version,
            reporter,
        )
        .await?;
    }
    let spec = ContainerSpec::root(&image, &target.platform, false, "build");
    let (after, binaries, closure, link) = engine
        .with_container(&spec, async |c| {
            put_inputs(c, &inputs, fetcher).await?;
            run_script(c, planned, &inputs, reporter).await?;
            let binaries = locate(c, planned).await?;
            let closure = apt::library_closure(c, target, &binaries, &system).await?;
            let step = Step::start(reporter, "staging, RUNPATH and copy-out");
            let link =
                apt::stage_and_link(c, planned.link, &binaries, &closure, root, reporter).await?;
            drop(step);
            let after = apt::dpkg_list(
                &c.run_ok(apt::DPKG_QUERY, "dpkg-query", &ExecOptions::default())
                    .await?
                    .stdout,
            );
            let owners = apt::owners(c, &closure.libraries.values().collect::<Vec<_>>()).await?;
            Ok::<_, BuildError>(((after, owners), binaries, closure, link))
        })
        .await?;
    let (after, owners) = after;
    // A file no package owns is the build's own.
    let version_of = |path: &str| match apt::owner_and_version(&owners, &after, path) {
        (None, _) => (Some(planned.name.clone()), Some(planned.version.clone())),
        known => known,
    };
    let files = apt::rows(root, &binaries, &closure, link, &version_of)?;
    Ok(AptBuild {
        installed: Vec::new(),
        files,
        system_libraries: system,
    })
}

/// What goes into the build container: the source archive, or every
/// `.crate` file (the crate's first), verified.
pub(super) enum Inputs {
    Archive(Blob, ArchiveKind),
    Crates(Vec<(crates::Locked, Blob)>),
}

pub(super) async fn fetch_inputs(
    planned: &PlannedBuild,
    fetcher: &Fetcher,
) -> Result<Inputs, BuildError> {
    match &planned.source {
        BuildSource::Archive {
            url,
            sha256,
            archive,
        } => {
            let label = url.rsplit('/').next().unwrap_or(url).to_string();
            let blob = fetcher
                .download(&fetcher.mirrored(url), Some(sha256), None, &label)
                .await?;
            // Refuse escaping or oversized members before the container sees them.
            crate::archive::list(*archive, &blob.path, crate::archive::Limits::from_env())
                .map_err(|source| BuildError::BadSource {
                    name: planned.name.clone(),
                    file: label,
                    source,
                })?;
            Ok(Inputs::Archive(blob, *archive))
        }
        BuildSource::Crate {
            name,
            sha256,
            index,
            ..
        } => {
            let registry = Registry::new(index, fetcher);
            let all = crates::fetch_all(&registry, name, &planned.version, sha256).await?;
            Ok(Inputs::Crates(all))
        }
    }
}

/// Copy the inputs into `/work/in` of the container, streamed from the
/// cache (each file checked again as it is read).
pub(super) async fn put_inputs(
    c: &impl Run,
    inputs: &Inputs,
    fetcher: &Fetcher,
) -> Result<(), BuildError> {
    let mut files: Vec<(String, &Blob)> = Vec::new();
    let mut sums = String::new();
    match inputs {
        Inputs::Archive(blob, kind) => {
            let ext = match kind {
                ArchiveKind::Zip => "zip",
                ArchiveKind::TarXz => "tar.xz",
                _ => "tar.gz",
            };
            files.push((format!("in/source.{ext}"), blob));
        }
        Inputs::Crates(all) => {
            for (i, (l, blob)) in all.iter().enumerate() {
                let dir = format!("{}-{}", l.name, l.version);
                files.push((format!("in/{dir}.crate"), blob));
                if i > 0 {
                    sums.push_str(&format!("{dir} {}\n", l.sha256));
                }
            }
        }
    }
    let tmp = cache_tmp(fetcher)?;
    let tar = tempfile::NamedTempFile::new_in(&tmp).map_err(|source| DockerError::Local {
        path: tmp.clone(),
        source,
    })?;
    let mut members: Vec<(&str, u32, u64)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), 0o644, b.size))
        .collect();
    members.push(("in/SUMS", 0o644, sums.len() as u64));
    let blobs: Vec<&Blob> = files.iter().map(|(_, b)| *b).collect();
    // What is sent is what was verified: each blob is hashed again as it
    // goes into the tar, and a changed one fails the write.
    crate::docker::write_tar(tar.as_file(), &members, (0, 0), |i| {
        Ok(match blobs.get(i) {
            Some(b) => Box::new(crate::fetch::verified_reader(b)?) as Box<dyn Read>,
            None => Box::new(std::io::Cursor::new(sums.clone().into_bytes())),
        })
    })
    .map_err(|source| DockerError::Local {
        path: tar.path().to_path_buf(),
        source,
    })?;
    c.run_ok("mkdir -p /work", "making /work", &ExecOptions::default())
        .await?;
    c.copy_in_file("/work", tar.path()).await?;
    Ok(())
}

/// The shell that unpacks the inputs and builds, as root, in `/work`.
pub(super) fn script_for(planned: &PlannedBuild, inputs: &Inputs) -> String {
    let head =
        format!("set -e; export PREFIX={PREFIX}; mkdir -p \"$PREFIX\" /work/src; cd /work/src\n");
    match inputs {
        Inputs::Archive(_, kind) => {
            let unpack = match kind {
                ArchiveKind::Zip => "unzip -q /work/in/source.zip",
                ArchiveKind::TarXz => "tar -xJf /work/in/source.tar.xz --no-same-owner",
                _ => "tar -xzf /work/in/source.tar.gz --no-same-owner",
            };
            format!(
                "{head}{unpack}\n\
                 set -- *; if [ $# -eq 1 ] && [ -d \"$1\" ]; then cd \"$1\"; fi\n\
                 sh -e -c {}\n",
                sh_quote(planned.script.as_deref().unwrap_or("true"))
            )
        }
        Inputs::Crates(all) => {
            let (main, _) = &all[0];
            let features = if planned.features.is_empty() {
                String::new()
            } else {
                format!(" --features {}", sh_quote(&planned.features.join(",")))
            };
            format!(
                "{head}export PATH={RUST_DIR}/bin:$PATH CARGO_HOME=/work/cargo-home\n\
                 mkdir -p /work/vendor \"$CARGO_HOME\"\n\
                 while read -r dir sum; do\n\
                   tar -xzf \"/work/in/$dir.crate\" -C /work/vendor --no-same-owner\n\
                   printf '{{\"files\":{{}},\"package\":\"%s\"}}' \"$sum\" > \"/work/vendor/$dir/.cargo-checksum.json\"\n\
                 done < /work/in/SUMS\n\
                 printf '[source.crates-io]\\nreplace-with = \"vendored\"\\n[source.vendored]\\ndirectory = \"/work/vendor\"\\n[net]\\noffline = true\\n' > \"$CARGO_HOME/config.toml\"\n\
                 tar -xzf /work/in/{dir}.crate --no-same-owner\n\
                 cd {dir}\n\
                 cargo install --locked --offline --path . --root \"$PREFIX\"{features}\n",
                dir = sh_quote(&format!("{}-{}", main.name, main.version)),
            )
        }
    }
}

/// Run the build; a failure shows its last lines.
pub(super) async fn run_script(
    c: &impl Run,
    planned: &PlannedBuild,
    inputs: &Inputs,
    reporter: &dyn Reporter,
) -> Result<(), BuildError> {
    let _step = Step::start(
        reporter,
        &format!("building {} {}", planned.name, planned.version),
    );
    let out = c
        .exec(
            &script_for(planned, inputs),
            &ExecOptions {
                workdir: Some("/work".into()),
                ..Default::default()
            },
        )
        .await?;
    tracing::debug!("build {}: {}", planned.name, out.combined());
    if out.code == 0 {
        return Ok(());
    }
    let all = out.combined();
    let lines: Vec<&str> = all.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    Err(BuildError::ScriptFailed {
        name: planned.name.clone(),
        code: out.code,
        image: c.image().to_string(),
        tail,
    })
}

/// The environment variable that sets the limit on one output's size.
pub const OUTPUT_LIMIT_VAR: &str = "BUNDLE_MAX_BUILD_OUTPUT";

/// The largest file a build may ship (`BUNDLE_MAX_BUILD_OUTPUT`, 2 GiB,
/// as much as an archive may unpack to):
/// a 3 GiB sparse file made by a script is a clear error, not a copy.
pub(super) fn output_limit() -> u64 {
    std::env::var(OUTPUT_LIMIT_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(2 << 30)
}

/// Each binary: `$PREFIX/bin/<name>`, else `$PREFIX/<path>`; a regular file
/// that is under $PREFIX once links are followed (a link to a file of the
/// build image, `/etc/shadow` say, is refused, as an archive member that
/// leaves its folder is), and within the output limit.
pub(super) async fn locate(
    c: &impl Run,
    planned: &PlannedBuild,
) -> Result<apt::Binaries, BuildError> {
    let mut out = Vec::new();
    let limit = output_limit();
    for b in &planned.binaries {
        let mut tries = vec![format!("{PREFIX}/{b}")];
        if !b.contains('/') {
            tries.insert(0, format!("{PREFIX}/bin/{b}"));
        }
        let script =
            format!(
            "for p in {}; do if [ -f \"$p\" ]; then r=$(readlink -f \"$p\") && echo \"$r\" && stat -c %s \"$r\"; exit 0; fi; done; exit 1",
            tries.iter().map(|t| sh_quote(t)).collect::<Vec<_>>().join(" ")
        );
        let found = c.exec(&script, &ExecOptions::default()).await?;
        let mut lines = found.stdout.lines();
        let real = lines.next().unwrap_or("").trim().to_string();
        let size: u64 = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        if found.code == 0 && !real.is_empty() {
            if !real.starts_with(&format!("{PREFIX}/")) {
                return Err(BuildError::OutsidePrefix {
                    name: planned.name.clone(),
                    binary: b.clone(),
                    real,
                });
            }
            if size > limit {
                return Err(BuildError::OutputTooLarge {
                    name: planned.name.clone(),
                    binary: b.clone(),
                    size,
                    limit,
                });
            }
            let name = b.rsplit('/').next().unwrap_or(b).to_string();
            out.push((name, real));
            continue;
        }
        let listed = c
            .exec(
                &format!("cd {PREFIX} && find . -type f | sed 's|^\\./||' | sort | head -n 20"),
                &ExecOptions::default(),
            )
            .await?;
        return Err(BuildError::BinaryMissing {
            name: planned.name.clone(),
            binary: b.clone(),
            found: listed.stdout.lines().map(str::to_string).collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Diagnose;
    use crate::model::Sha256;
    use crate::stage::build::test_support::planned;
    use std::path::PathBuf;

    fn blob() -> Blob {
        Blob {
            path: PathBuf::from("/nonexistent"),
            sha256: Sha256::of(b""),
            size: 0,
        }
    }

    #[test]
    fn an_output_that_leads_outside_prefix_or_is_too_large_is_refused() {
        use crate::docker::fake::{Answer, FakeContainer};
        let p = planned(BuildSource::Archive {
            url: "http://127.0.0.1:1/hello-1.0.tar.gz".into(),
            sha256: Sha256::of(b""),
            archive: ArchiveKind::TarGz,
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let located = |answer: &str| {
            let c = FakeContainer::new().answer("readlink -f", vec![Answer::ok(answer)]);
            rt.block_on(locate(&c, &p))
        };
        // `$PREFIX/bin/hello -> /etc/shadow`, or `../../../etc/passwd`.
        for real in ["/etc/shadow", "/opt/bundle-prefix-other/x", "/etc/passwd"] {
            let e = located(&format!("{real}\n1000\n")).unwrap_err();
            assert!(matches!(e, BuildError::OutsidePrefix { .. }), "{e}");
            assert_eq!(
                e.to_string(),
                format!("[[build]] `hello`: `hello` leads outside $PREFIX (/opt/bundle-prefix), to {real}")
            );
            assert_eq!(e.exit_code(), crate::error::BAD_INPUT);
        }
        // A 3 GiB (sparse) file.
        let e = located("/opt/bundle-prefix/bin/hello\n3221225472\n").unwrap_err();
        assert!(matches!(e, BuildError::OutputTooLarge { .. }), "{e}");
        assert!(e.hint().unwrap().contains(OUTPUT_LIMIT_VAR));
        let ok = located("/opt/bundle-prefix/bin/hello\n1000\n").unwrap();
        assert_eq!(
            ok,
            [(
                "hello".to_string(),
                "/opt/bundle-prefix/bin/hello".to_string()
            )]
        );
    }

    #[test]
    fn an_archive_is_unpacked_its_top_folder_entered_and_the_script_run_with_sh_e() {
        let p = planned(BuildSource::Archive {
            url: "http://127.0.0.1:1/hello-1.0.tar.gz".into(),
            sha256: Sha256::of(b""),
            archive: ArchiveKind::TarGz,
        });
        let s = script_for(&p, &Inputs::Archive(blob(), ArchiveKind::TarGz));
        assert!(s.contains("export PREFIX=/opt/bundle-prefix"), "{s}");
        assert!(s.contains("tar -xzf /work/in/source.tar.gz"), "{s}");
        assert!(s.contains("cd \"$1\""), "{s}");
        assert!(
            s.contains("sh -e -c 'make install PREFIX=\"$PREFIX\"'"),
            "{s}"
        );
        let zip = script_for(&p, &Inputs::Archive(blob(), ArchiveKind::Zip));
        assert!(zip.contains("unzip -q /work/in/source.zip"), "{zip}");
    }

    #[test]
    fn a_crate_is_built_offline_from_vendored_locked_dependencies() {
        let p = planned(BuildSource::Crate {
            name: "hello".into(),
            url: "http://127.0.0.1:1/dl/hello/1.0.0/download".into(),
            sha256: Sha256::of(b""),
            index: "http://127.0.0.1:1/".into(),
        });
        let locked = |name: &str| crates::Locked {
            name: name.into(),
            version: "1.0.0".into(),
            sha256: Sha256::of(b""),
        };
        let s = script_for(
            &p,
            &Inputs::Crates(vec![(locked("hello"), blob()), (locked("dep"), blob())]),
        );
        assert!(s.contains("replace-with = \"vendored\""), "{s}");
        assert!(s.contains("offline = true"), "{s}");
        assert!(
            s.contains(
                "cargo install --locked --offline --path . --root \"$PREFIX\" --features pcre2"
            ),
            "{s}"
        );
        assert!(s.contains("cd hello-1.0.0"), "{s}");
        assert_eq!(
            build_packages(&p),
            vec!["gcc", "libc6-dev", "libsqlite3-dev"],
            "crates link with the image's own C toolchain"
        );
    }
}
