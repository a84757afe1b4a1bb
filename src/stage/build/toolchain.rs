//! The Rust toolchain a crate is built with: the host's rustup toolchain,
//! copied into the target's build image (cached there by its contents).

use std::path::{Path, PathBuf};

use super::BuildError;
use crate::config::target::Target;
use crate::docker::DockerError;
use crate::fetch::Fetcher;
use crate::model::plan::PlannedBuild;

/// The host's Rust toolchain: its folder and `rustc -V`.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub sysroot: PathBuf,
    pub version: String,
    pub host: String,
}

/// `rustc` from `RUSTC` or PATH: its sysroot, which must hold cargo.
pub fn host_toolchain(name: &str) -> Result<Toolchain, BuildError> {
    let none = |why: String| BuildError::NoToolchain {
        name: name.to_string(),
        why,
    };
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&rustc)
            .args(args)
            .output()
            .map_err(|e| none(format!("cannot run {}: {e}", rustc.to_string_lossy())))?;
        if !out.status.success() {
            return Err(none(format!(
                "`rustc {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let verbose = run(&["-vV"])?;
    let sysroot = PathBuf::from(run(&["--print", "sysroot"])?);
    let version = verbose.lines().next().unwrap_or_default().to_string();
    let host = verbose
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_default()
        .to_string();
    if !sysroot.join("bin/cargo").is_file() {
        return Err(none(format!(
            "the toolchain at {} has no bin/cargo",
            sysroot.display()
        )));
    }
    Ok(Toolchain {
        sysroot,
        version,
        host,
    })
}

/// The host toolchain, when it can build for the target.
pub(super) fn rust_for(planned: &PlannedBuild, target: &Target) -> Result<Toolchain, BuildError> {
    let t = host_toolchain(&planned.name)?;
    if !t.host.starts_with(target.arch.as_str()) {
        return Err(BuildError::OtherArch {
            name: planned.name.clone(),
            host: t.host.clone(),
            target: target.name.clone(),
            arch: target.arch.as_str().into(),
        });
    }
    Ok(t)
}

/// This run's temporary folder in the cache.
pub(super) fn cache_tmp(fetcher: &Fetcher) -> Result<PathBuf, DockerError> {
    fetcher
        .cache()
        .tmp_dir()
        .map_err(|source| DockerError::Local {
            path: fetcher.cache().root().to_path_buf(),
            source,
        })
}

/// A tar of the toolchain's `bin/cargo`, `bin/rustc` and `lib/` (symlinks
/// kept), written into `tmp`.
pub(super) fn toolchain_tar(sysroot: &Path, tmp: &Path) -> std::io::Result<PathBuf> {
    let file = tempfile::NamedTempFile::new_in(tmp)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file.as_file()));
    b.follow_symlinks(false);
    for prog in ["cargo", "rustc"] {
        b.append_path_with_name(sysroot.join("bin").join(prog), format!("bin/{prog}"))?;
    }
    b.append_dir_all("lib", sysroot.join("lib"))?;
    b.into_inner()?;
    let (_, path) = file.keep().map_err(|e| e.error)?;
    Ok(path)
}
