//! The preinstalled packages a resolution relies on, as wheels: what a
//! sandbox stand-in must be given, and what a complete lock must list.

use std::str::FromStr;
use std::sync::Arc;

use pep508_rs::{Requirement, VerbatimUrl};

use crate::config::target::Target;
use crate::model::plan::Excluded;

use super::solver::{resolve_standalone, Resolved};

/// The wheels of the preinstalled packages `excluded` names, and of what
/// they need: the excluded pins resolved from scratch, then whatever else the
/// target has pinned to its version, until nothing changes. Errors are text.
pub async fn preinstalled_closure(
    index_url: &str,
    fetcher: Arc<crate::fetch::Fetcher>,
    target: &Target,
    excluded: &[Excluded],
) -> Result<Vec<Resolved>, String> {
    let mut pins: Vec<String> = excluded
        .iter()
        .map(|e| format!("{}=={}", e.package, e.version))
        .collect();
    let mut wheels = Vec::new();
    for _ in 0..4 {
        let reqs = pins
            .iter()
            .map(|p| Requirement::<VerbatimUrl>::from_str(p).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let resolution = resolve_standalone(index_url, fetcher.clone(), target, reqs).await?;
        let mut more = Vec::new();
        for p in &resolution.packages {
            if let Some(v) = target.preinstalled.get(&p.name) {
                if *v != p.version && !pins.iter().any(|x| x.starts_with(&format!("{}==", p.name)))
                {
                    more.push(format!("{}=={v}", p.name));
                }
            }
        }
        wheels = resolution.packages;
        if more.is_empty() {
            break;
        }
        pins.extend(more);
    }
    Ok(wheels)
}
