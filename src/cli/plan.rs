//! `bundle plan` (resolve only, print the Plan) and `bundle lock` (save it).

use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use bundle::pipeline as build;
use bundle::Error;

use super::reporter::CliReporter;
use super::{options_from, outln, print_json};
use crate::ResolveArgs;

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    resolve: ResolveArgs,
    /// Print the Plan as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// Resolve the arguments to a Plan, with progress on stderr.
pub async fn resolve_plan(
    resolve: &ResolveArgs,
    quiet: bool,
    cancel: CancellationToken,
) -> Result<bundle::model::plan::Plan, Error> {
    let options = options_from(resolve);
    let (recipe, target) = build::load(&options)?;
    let reporter = Arc::new(CliReporter::new(quiet));
    let fetcher = build::fetcher(&options, reporter.clone())?;
    let result = build::make_plan(
        &options,
        &recipe,
        &target,
        fetcher,
        reporter.clone(),
        cancel,
    )
    .await;
    reporter.finish();
    result
}

pub async fn run(args: PlanArgs, quiet: bool, cancel: CancellationToken) -> Result<(), Error> {
    let PlanArgs { resolve, json } = args;
    let plan = resolve_plan(&resolve, quiet, cancel).await?;
    if json {
        // The Plan (what a lock file saves), plus the staging steps it
        // makes, for scripts that want to know what `build` will do.
        #[derive(serde::Serialize)]
        struct WithSteps<'a> {
            #[serde(flatten)]
            plan: &'a bundle::model::plan::Plan,
            steps: Vec<bundle::stage::StageStep>,
        }
        print_json(&WithSteps {
            plan: &plan,
            steps: bundle::stage::steps(&plan),
        });
    } else {
        outln!(
            "{} for {} ({}, glibc {}, Python {})",
            plan.name,
            plan.target.name,
            plan.target.platform,
            plan.target.glibc,
            plan.target.python
        );
        for w in &plan.wheels {
            match &w.sdist {
                Some(s) => outln!(
                    "  wheel     {}=={}  {} (built from {})",
                    w.package,
                    w.version,
                    w.filename,
                    s.filename
                ),
                None => outln!("  wheel     {}=={}  {}", w.package, w.version, w.filename),
            }
        }
        if let Some(a) = &plan.apt {
            outln!(
                "  apt       {}  (binaries: {}; installed at build time in {})",
                a.packages.join(" "),
                a.binaries.join(" "),
                plan.target.name
            );
        }
        for r in &plan.releases {
            outln!("  release   {} {}  {}", r.name, r.version, r.url);
        }
        for e in &plan.excluded {
            outln!("  excluded  {}=={}  ({})", e.package, e.version, e.reason);
        }
        outln!("build will:");
        for (i, step) in bundle::stage::steps(&plan).iter().enumerate() {
            outln!("  {:>2}. {}", i + 1, step.describe());
        }
    }
    Ok(())
}
