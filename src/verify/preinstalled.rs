//! The sandbox image plus the preinstalled packages a bundle relies on:
//! what the target already has that the resolution left out.

use std::sync::Arc;

use crate::assemble::Manifest;
use crate::config::target::Target;
use crate::docker::{tar_of, ContainerSpec, Engine, ExecOptions, Run};
use crate::fetch::Fetcher;
use crate::report::{Reporter, Step as Progress};

use super::{VerifyError, VerifyOptions};

/// The sandbox image plus the preinstalled packages this bundle relies on
/// (those the resolution left out, and their own dependencies, at the
/// target's versions), installed from wheels fetched for the target.
pub(super) async fn preinstalled_image(
    engine: &Engine,
    target: &Target,
    manifest: &Manifest,
    base: &str,
    fetcher: &Arc<Fetcher>,
    reporter: &dyn Reporter,
    options: &VerifyOptions,
) -> Result<String, VerifyError> {
    if manifest.excluded.is_empty() {
        return Ok(base.to_string());
    }
    let failed = |message: String| VerifyError::Preinstalled {
        target: target.name.clone(),
        message,
    };
    let wheels = crate::resolve::preinstalled_closure(
        &options.index_url,
        fetcher.clone(),
        target,
        &manifest.excluded,
    )
    .await
    .map_err(failed)?;
    let mut files = Vec::new();
    let mut hashes = Vec::new();
    for w in &wheels {
        let blob = fetcher
            .download(
                &w.wheel.url,
                w.wheel.sha256.as_ref(),
                w.wheel.size,
                &w.wheel.filename,
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        hashes.push(blob.sha256.to_string());
        let data = std::fs::read(&blob.path).map_err(|e| failed(e.to_string()))?;
        files.push((format!("wheels/{}", w.wheel.filename), 0o644, data));
    }
    hashes.sort();
    let key = crate::fetch::cache::sha256_hex(format!("{base}\n{}", hashes.join("\n")).as_bytes());
    let tag = format!("bundle-verify:{}", &key[..16]);
    if engine.image_id(&tag).await?.is_some() {
        return Ok(tag);
    }
    let what = format!(
        "installing {} preinstalled package(s) into the sandbox image",
        wheels.len()
    );
    let _step = Progress::start(reporter, &what);
    let spec = ContainerSpec::root(base, &target.platform, false, "verify-image");
    engine
        .with_container(&spec, async |c| {
            let tar = tar_of(&files).map_err(|e| failed(e.to_string()))?;
            c.run_ok("mkdir -p /tmp/bundle-pre", "mkdir", &ExecOptions::default())
                .await?;
            c.copy_in("/tmp/bundle-pre", tar).await?;
            c.run_ok(
                "python3 -m pip install --no-index --no-deps --disable-pip-version-check /tmp/bundle-pre/wheels/*.whl \
                 && rm -rf /tmp/bundle-pre",
                "installing the preinstalled packages",
                &ExecOptions::default(),
            )
            .await?;
            c.commit(&tag).await?;
            Ok::<(), VerifyError>(())
        })
        .await?;
    Ok(tag)
}
