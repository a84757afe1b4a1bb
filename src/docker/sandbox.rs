//! Images of a target, made locally and cached by a hash of what went into
//! them:
//! - the *sandbox* image: the target's `image` plus its `system_packages`,
//!   its `user` and its `upload_dir`, i.e. what the sandbox already has;
//! - the *build* image: the sandbox image plus compilers and Python headers,
//!   for wheels built from sdists.
//!
//! Also: the shared libraries a sandbox image has, read from a pristine
//! container of it (`ldconfig -p`), never from a hard-coded list.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::target::Target;
use crate::docker::Run;
use crate::docker::{sh_quote, ContainerSpec, DockerError, Engine, ExecOptions};
use crate::fetch::cache::{sha256_hex, Cache};
use crate::report::Reporter;

/// Bumped when the scripts below change, so old images are not reused.
const RECIPE_VERSION: &str = "1";

/// Shell prelude for apt-get in images of Debian and Ubuntu.
pub const APT_ENV: &str = "export DEBIAN_FRONTEND=noninteractive; \
     APT='apt-get -q -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false'";

fn key(parts: &[&str]) -> String {
    sha256_hex(parts.join("\n").as_bytes())[..16].to_string()
}

/// The target's sandbox image (made once, then reused). Returns its tag.
pub async fn sandbox_image(
    engine: &Engine,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<String, DockerError> {
    let base_id = engine
        .ensure_image(&target.image, &target.platform, reporter)
        .await?;
    engine
        .check_platform(&target.image, &target.platform)
        .await?;
    let mut packages = target.system_packages.clone();
    packages.sort();
    let packages = packages.join(" ");
    let tag = format!(
        "bundle-sandbox:{}",
        key(&[
            RECIPE_VERSION,
            &base_id,
            &target.platform,
            &packages,
            &target.user,
            &target.upload_dir
        ])
    );
    let user = sh_quote(&target.user);
    let upload = sh_quote(&target.upload_dir);
    let install = if packages.is_empty() {
        String::new()
    } else {
        format!(
            "$APT update && $APT install -y {} && rm -rf /var/lib/apt/lists/*",
            packages
                .split(' ')
                .map(sh_quote)
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    let script = format!(
        "set -e; {APT_ENV}; {install}
        id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/sh {user}
        mkdir -p {upload} && chown {user} {upload}"
    );
    engine
        .derived_image(&target.image, &target.platform, &tag, &script, reporter)
        .await
}

/// The build image for sdists: the sandbox image plus a C toolchain and the
/// Python headers and pip of the image's distribution.
pub async fn build_image(
    engine: &Engine,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<String, DockerError> {
    let sandbox = sandbox_image(engine, target, reporter).await?;
    let id = engine.image_id(&sandbox).await?.unwrap_or_default();
    let tag = format!("bundle-build:{}", key(&[RECIPE_VERSION, &id]));
    let script = format!(
        "set -e; {APT_ENV}; $APT update && $APT install -y build-essential python3-dev python3-pip python3-venv \
         && rm -rf /var/lib/apt/lists/*"
    );
    engine
        .derived_image(&sandbox, &target.platform, &tag, &script, reporter)
        .await
}

/// A build image for `[[build]]` recipes: the sandbox image plus the
/// recipe's `packages` and what every build needs here (patchelf for
/// RUNPATH, xz-utils and unzip to unpack sources). Cached by its inputs.
pub async fn image_with(
    engine: &Engine,
    target: &Target,
    packages: &[String],
    reporter: &dyn Reporter,
) -> Result<String, DockerError> {
    let sandbox = sandbox_image(engine, target, reporter).await?;
    let id = engine.image_id(&sandbox).await?.unwrap_or_default();
    let mut all: Vec<String> = ["patchelf", "xz-utils", "unzip"]
        .iter()
        .map(|s| s.to_string())
        .chain(packages.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    let words = all
        .iter()
        .map(|p| sh_quote(p))
        .collect::<Vec<_>>()
        .join(" ");
    let tag = format!(
        "bundle-build:{}",
        key(&[RECIPE_VERSION, &id, "packages", &all.join(" ")])
    );
    let script = format!(
        "set -e; {APT_ENV}; $APT update && $APT install -y {words} && rm -rf /var/lib/apt/lists/*"
    );
    engine
        .derived_image(&sandbox, &target.platform, &tag, &script, reporter)
        .await
}

/// The image `base` with the host's Rust toolchain copied in at `dest`
/// (`tar` writes it), cached by `id` (the toolchain's version).
pub async fn image_with_rust(
    engine: &Engine,
    base: &str,
    platform: &str,
    tar: &dyn Fn() -> std::io::Result<std::path::PathBuf>,
    dest: &str,
    id: &str,
    reporter: &dyn Reporter,
) -> Result<String, DockerError> {
    let base_id = engine.image_id(base).await?.unwrap_or_default();
    let tag = format!("bundle-rust:{}", key(&[RECIPE_VERSION, &base_id, dest, id]));
    if engine.image_id(&tag).await?.is_some() {
        return Ok(tag);
    }
    let _step = crate::report::Step::start(reporter, &format!("preparing image {tag} ({id})"));
    let file = tar().map_err(|source| DockerError::Local {
        path: dest.into(),
        source,
    })?;
    let spec = ContainerSpec::root(base, platform, false, "image");
    let done = engine
        .with_container(&spec, async |c| {
            c.run_ok(
                &format!("mkdir -p {}", sh_quote(dest)),
                "making the folder",
                &ExecOptions::default(),
            )
            .await?;
            c.copy_in_file(dest, &file).await?;
            c.commit(&tag).await
        })
        .await;
    let _ = std::fs::remove_file(&file);
    done?;
    Ok(tag)
}

/// Sonames (and library file names) in an image, from `ldconfig -p` in a
/// pristine container with no network. Cached by image id.
pub async fn libraries(
    engine: &Engine,
    image: &str,
    platform: &str,
    cache: &Cache,
) -> Result<BTreeSet<String>, DockerError> {
    let id = engine
        .image_id(image)
        .await?
        .unwrap_or_else(|| image.into());
    let path = cache.keyed("docker", &format!("libs-v2-{id}"), ".txt");
    if let Some(text) = cache.read_checked(&path) {
        return Ok(String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_string)
            .collect());
    }
    let spec = ContainerSpec::root(image, platform, false, "libraries");
    let out = engine
        .with_container(&spec, async |c| {
            c.run_ok(
                "ldconfig -p",
                "listing the image's libraries",
                &ExecOptions {
                    timeout: Some(Duration::from_secs(60)),
                    ..Default::default()
                },
            )
            .await
        })
        .await?;
    let libs = parse_ldconfig(&out.stdout)
        .into_iter()
        .map(|(name, _)| name)
        .collect::<BTreeSet<_>>();
    let text: String = libs.iter().map(|l| format!("{l}\n")).collect();
    if let Err(e) = cache.write_checked(&path, text.as_bytes()) {
        tracing::warn!("cannot cache {}: {e}", path.display());
    }
    Ok(libs)
}

/// `(soname, path)` pairs from `ldconfig -p` output.
pub fn parse_ldconfig(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (left, path) = l.split_once(" => ")?;
            let name = left.trim().split(" (").next()?.trim();
            (!name.is_empty()).then(|| (name.to_string(), path.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldconfig_output() {
        let text = "123 libs found in cache `/etc/ld.so.cache'\n\
            \tlibreadline.so.8 (libc6,x86-64) => /lib/x86_64-linux-gnu/libreadline.so.8\n\
            \tlibm.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libm.so.6\n";
        assert_eq!(
            parse_ldconfig(text),
            vec![
                (
                    "libreadline.so.8".to_string(),
                    "/lib/x86_64-linux-gnu/libreadline.so.8".to_string()
                ),
                (
                    "libm.so.6".to_string(),
                    "/lib/x86_64-linux-gnu/libm.so.6".to_string()
                ),
            ]
        );
    }
}
