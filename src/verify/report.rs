//! The report of a verify run: its steps and their items, whether it
//! passed, and the kept report of an identical passing run (keyed on what
//! decides the outcome).

use serde::Serialize;

use crate::config::target::Target;
use crate::docker::Engine;

use super::bundle::Bundle;
use super::items::Item;
use super::VerifyError;

/// One step of a verify run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub seconds: f64,
    /// The command run in the sandbox, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its output (the end of it, when long); for a step with items, what
    /// failed or was skipped, then a count.
    pub output: String,
    /// What the step proved, one entry each (the loads, programs and
    /// imports steps): a file, a program, a module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
}

/// The result of a verify run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub bundle: String,
    pub target: String,
    pub image: String,
    pub user: String,
    pub upload_dir: String,
    pub ok: bool,
    pub steps: Vec<Step>,
    /// The container, when `--keep` left it running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// True when this is the kept report of an identical passing run: the
    /// same uploaded bytes, PROMPT.txt, target and sandbox image (`--fresh`
    /// runs it again).
    #[serde(default)]
    pub cached: bool,
}

impl Report {
    /// The first failed step, if any.
    pub fn failure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| !s.ok)
    }

    /// The error a failed run ends with, if a step failed.
    pub fn error(&self) -> Option<VerifyError> {
        self.failure().map(|s| VerifyError::Failed {
            step: s.name.clone(),
            failed: self.steps.iter().filter(|s| !s.ok).count(),
            total: self.steps.len(),
        })
    }
}

/// What decides a verify's outcome: the bytes uploaded (by sha256), the
/// PROMPT.txt run, the manifest whose checks run, the target as verify
/// uses it, and the sandbox image (by id: a rebuilt image is another input).
pub(super) async fn result_key(
    bundle: &Bundle,
    target: &Target,
    engine: &Engine,
    image: &str,
) -> Result<String, VerifyError> {
    let id = engine.image_id(image).await?.unwrap_or_default();
    let uploads: Vec<(&str, String)> = bundle
        .delivery
        .uploads
        .iter()
        .map(|u| (u.path.as_str(), u.sha256.to_string()))
        .collect();
    let inputs = serde_json::json!({
        // 2: the loads, programs and imports steps.
        "v": 2,
        "bundle": env!("CARGO_PKG_VERSION"),
        "uploads": uploads,
        "prompt": crate::model::Sha256::of(bundle.prompt.as_deref().unwrap_or("").as_bytes()).to_string(),
        // The checks and imports come from the manifest as read here.
        "manifest": crate::model::Sha256::of(&serde_json::to_vec(&bundle.manifest).unwrap_or_default()).to_string(),
        "profile": target.profile().digest.to_string(),
        "user": target.user,
        "upload_dir": target.upload_dir,
        "timeout": target.command_timeout_s,
        "image": id,
    });
    Ok(format!("verify-{inputs}"))
}

/// The report of an identical passing run, if one is kept.
pub(super) fn cached_report(cache: &crate::fetch::cache::Cache, key: &str) -> Option<Report> {
    cache
        .read_json::<Report>(&cache.keyed("verify", key, ".json"))
        .filter(|r| r.ok)
}

/// Keep a passing report (best effort).
pub(super) fn remember(cache: &crate::fetch::cache::Cache, key: &str, report: &Report) {
    let _ = cache.write_json(&cache.keyed("verify", key, ".json"), report);
}
