//! `bundle lock`: resolve and save the Plan as `<name>.lock.json`.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use bundle::model::pylock::{File, Package, Pylock};
use bundle::Error;

use super::args::ResolveArgs;
use super::plan::resolve_plan;

#[derive(Args)]
pub struct LockArgs {
    #[command(flatten)]
    resolve: ResolveArgs,
    /// Where to write the lock file (default: ./<name>.lock.json, or ./pylock.toml).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// `json`: bundle's own lock, for `build --locked`; `pylock`: a PEP 751
    /// pylock.toml of the wheels, with their URLs and hashes.
    #[arg(long, value_enum, default_value = "json")]
    format: LockFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LockFormat {
    Json,
    Pylock,
}

pub async fn run(args: LockArgs, quiet: bool, cancel: CancellationToken) -> Result<(), Error> {
    let LockArgs {
        resolve,
        output,
        format,
    } = args;
    let (mut plan, target) = resolve_plan(&resolve, quiet, cancel).await?;
    // apt packages are locked to exact .deb files, resolved in the target's
    // image from its package lists (the files are fetched by the first
    // `build --locked`, after which --offline works).
    if let Some(apt) = plan.apt.as_mut() {
        let reporter = std::sync::Arc::new(super::reporter::CliReporter::new(quiet));
        let options = super::options_from(&resolve);
        let fetcher = bundle::pipeline::fetcher(&options, reporter.clone())?;
        let engine = bundle::docker::Engine::connect("apt recipes need").await?;
        let recipe_apt = bundle::config::recipe::Apt {
            packages: apt.packages.clone(),
            binaries: apt.binaries.clone(),
            link: apt.link,
            check: Vec::new(),
        };
        let result = bundle::stage::apt::lock_debs(
            &engine,
            &target,
            &recipe_apt,
            &fetcher,
            reporter.as_ref(),
        )
        .await;
        reporter.finish();
        apt.debs = result?;
    }
    let (path, text) = match format {
        LockFormat::Json => {
            let mut text = serde_json::to_string_pretty(&plan).expect("serializable");
            text.push('\n');
            (
                output.unwrap_or_else(|| PathBuf::from(format!("{}.lock.json", plan.name))),
                text,
            )
        }
        LockFormat::Pylock => (
            output.unwrap_or_else(|| PathBuf::from("pylock.toml")),
            complete_pylock(&plan, &target, &resolve, quiet)
                .await?
                .to_toml(),
        ),
    };
    bundle::fsutil::write_atomic(&path, text.as_bytes()).map_err(|source| Error::Io {
        action: "writing the lock file",
        path: path.clone(),
        source,
    })?;
    if !quiet {
        let mut parts = vec![
            format!("{} wheels", plan.wheels.len()),
            format!("{} releases", plan.releases.len()),
        ];
        if let Some(n) = &plan.npm {
            parts.push(format!("{} npm packages", n.tree.len()));
        }
        if !plan.builds.is_empty() {
            let builds: Vec<String> = plan
                .builds
                .iter()
                .map(|b| format!("{} {}", b.name, b.version))
                .collect();
            parts.push(format!("builds: {}", builds.join(", ")));
        }
        eprintln!(
            "Locked {} ({}) in {}",
            plan.name,
            parts.join(", "),
            path.display()
        );
    }
    Ok(())
}

/// The plan's pylock, complete: with the preinstalled packages the plan
/// relies on (and what they need), resolved from the index and marked, so
/// that it installs into a fresh environment of the kind it declares.
async fn complete_pylock(
    plan: &bundle::model::plan::Plan,
    target: &bundle::config::target::Target,
    resolve: &super::args::ResolveArgs,
    quiet: bool,
) -> Result<Pylock, Error> {
    let lock = Pylock::of_plan(plan);
    if plan.excluded.is_empty() {
        return Ok(lock);
    }
    let reporter = std::sync::Arc::new(super::reporter::CliReporter::new(quiet));
    let fetcher = bundle::pipeline::fetcher(&super::options_from(resolve), reporter.clone())?;
    let found =
        bundle::resolve::preinstalled_closure(&plan.index_url, fetcher, target, &plan.excluded)
            .await;
    reporter.finish();
    let wheels = found.map_err(|message| {
        bundle::pipeline::PlanError::Resolve(bundle::resolve::ResolveError::Failed(format!(
            "resolving what target {} preinstalls, which a complete pylock lists: {message}",
            target.name
        )))
    })?;
    let packages = wheels
        .iter()
        .map(|w| {
            Package::preinstalled(
                w.name.as_ref(),
                &w.version.to_string(),
                File {
                    name: w.wheel.filename.clone(),
                    path: None,
                    url: Some(w.wheel.url.clone()),
                    size: w.wheel.size,
                    hashes: w
                        .wheel
                        .sha256
                        .iter()
                        .map(|h| ("sha256".to_string(), h.to_string()))
                        .collect(),
                },
            )
        })
        .collect();
    Ok(lock.with_preinstalled(packages))
}
