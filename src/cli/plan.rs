//! `bundle plan` (resolve only, print the Plan) and `bundle lock` (save it).

use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use bundle::pipeline as build;
use bundle::Error;

use super::args::ResolveArgs;
use super::reporter::CliReporter;
use super::{human_size, options_from, outln, print_json};

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    resolve: ResolveArgs,
    /// The upload limit to flag files against (e.g. 10MB), instead of the target's `max_file_bytes`.
    #[arg(long, value_name = "SIZE", value_parser = super::build::parse_max_upload)]
    max_upload: Option<u64>,
    /// Print the Plan as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// The plan's download sizes against the upload limit.
#[derive(serde::Serialize)]
struct Sizes {
    /// The sum of the sizes the index gave.
    total: u64,
    /// Files whose size the index did not give (releases, built wheels).
    unknown: Vec<String>,
    /// The upload limit.
    max_file_bytes: u64,
    /// Files larger than the limit: `build` cuts the archive into volumes
    /// across them.
    over_limit: Vec<String>,
}

fn sizes(plan: &bundle::model::plan::Plan, limit: u64) -> Sizes {
    let mut s = Sizes {
        total: 0,
        unknown: Vec::new(),
        max_file_bytes: limit,
        over_limit: Vec::new(),
    };
    for w in &plan.wheels {
        match w.size.filter(|_| w.sdist.is_none()) {
            Some(n) => {
                s.total += n;
                if n > limit {
                    s.over_limit.push(w.filename.clone());
                }
            }
            None => s.unknown.push(w.filename.clone()),
        }
    }
    for r in &plan.releases {
        s.unknown
            .push(r.url.rsplit('/').next().unwrap_or(&r.url).to_string());
    }
    if let Some(n) = &plan.npm {
        let urls = n
            .runtime
            .url
            .iter()
            .chain(n.tree.iter().map(|p| &p.resolved));
        s.unknown
            .extend(urls.map(|u| u.rsplit('/').next().unwrap_or(u).to_string()));
    }
    s
}

/// Resolve the arguments to a Plan, with progress on stderr.
pub async fn resolve_plan(
    resolve: &ResolveArgs,
    quiet: bool,
    cancel: CancellationToken,
) -> Result<(bundle::model::plan::Plan, bundle::config::target::Target), Error> {
    super::one_target(resolve)?;
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
        None,
    )
    .await;
    reporter.finish();
    Ok((result?, target))
}

pub async fn run(args: PlanArgs, quiet: bool, cancel: CancellationToken) -> Result<(), Error> {
    let PlanArgs {
        resolve,
        max_upload,
        json,
    } = args;
    let sources = super::sources(&resolve, quiet);
    let (plan, target) = resolve_plan(&resolve, quiet, cancel).await?;
    let sizes = sizes(&plan, max_upload.unwrap_or(target.max_file_bytes));
    if json {
        // The Plan (what a lock file saves), plus the staging steps it
        // makes, for scripts that want to know what `build` will do.
        #[derive(serde::Serialize)]
        struct WithSteps<'a> {
            #[serde(flatten)]
            plan: &'a bundle::model::plan::Plan,
            steps: Vec<bundle::stage::StageStep>,
            sizes: Sizes,
            sources: Vec<super::Source>,
        }
        print_json(&WithSteps {
            plan: &plan,
            steps: bundle::stage::steps(&plan),
            sizes,
            sources,
        });
    } else {
        print_plan(&plan, &sizes, &sources);
        outln!("build will:");
        for (i, step) in bundle::stage::steps(&plan).iter().enumerate() {
            outln!("  {:>2}. {}", i + 1, step.describe());
        }
    }
    Ok(())
}

/// The npm part in words: the runtime, each package where it goes, and
/// what was left out.
fn print_npm(n: &bundle::model::npm::PlannedNpm) {
    let r = &n.runtime;
    match (&r.package, &r.version) {
        (Some(p), Some(v)) => {
            let passed = if r.passed_over.is_empty() {
                String::new()
            } else {
                format!("; passed over {}", r.passed_over.join("; "))
            };
            outln!(
                "  runtime   {p} {v}  (newest in `{}` that runs on the target{passed})",
                r.range
            )
        }
        _ => outln!("  runtime   the sandbox's own node (runtime = \"system\")"),
    }
    for p in &n.tree {
        let flags = match (p.optional, p.peer) {
            (true, _) => " (optional)",
            (_, true) => " (peer)",
            _ => "",
        };
        outln!("  npm       {}@{}  {}{flags}", p.name, p.version, p.path);
    }
    // Platform packages for other machines are many (esbuild has 25):
    // one line for them, the others each with its reason.
    let (platform, other): (Vec<_>, Vec<_>) = n
        .skipped
        .iter()
        .partition(|s| s.reason.starts_with("it is for "));
    if !platform.is_empty() {
        let names: Vec<&str> = platform
            .iter()
            .take(4)
            .map(|s| s.package.as_str())
            .collect();
        let more = platform.len().saturating_sub(names.len());
        outln!(
            "  skipped   {} optional package(s) for other platforms: {}{}",
            platform.len(),
            names.join(", "),
            if more > 0 {
                format!(" and {more} more (--json lists them)")
            } else {
                String::new()
            }
        );
    }
    for s in other {
        outln!("  skipped   {}  ({})", s.package, s.reason);
    }
}

/// The Plan in words: every file with its size and source.
fn print_plan(plan: &bundle::model::plan::Plan, sizes: &Sizes, sources: &[super::Source]) {
    outln!(
        "{} for {} ({}, glibc {}, Python {})",
        plan.name,
        plan.target.name,
        plan.target.platform,
        plan.target.glibc,
        plan.target.python
    );
    outln!("  from      {}", super::sources_line(sources));
    for w in &plan.wheels {
        let size = match (w.size, &w.sdist) {
            (Some(n), None) if n > sizes.max_file_bytes => format!(
                "{}, OVER the {} upload limit: split across volumes",
                human_size(n),
                human_size(sizes.max_file_bytes)
            ),
            (Some(n), None) => human_size(n),
            _ => "size unknown".into(),
        };
        match &w.sdist {
            Some(s) => outln!(
                "  wheel     {}=={}  {} (built from {})",
                w.package,
                w.version,
                w.filename,
                s.filename
            ),
            None => outln!(
                "  wheel     {}=={}  {} ({size})",
                w.package,
                w.version,
                w.filename
            ),
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
    for b in &plan.builds {
        let from = match &b.source {
            bundle::model::plan::BuildSource::Crate { name, url, .. } => {
                format!("crate {name}, {url} and the crates its Cargo.lock pins")
            }
            bundle::model::plan::BuildSource::Archive { url, .. } => url.clone(),
        };
        let packages = if b.packages.is_empty() {
            String::new()
        } else {
            format!("; build image + {}", b.packages.join(" "))
        };
        outln!("  build     {} {}  {from}{packages}", b.name, b.version);
    }
    if let Some(n) = &plan.npm {
        print_npm(n);
    }
    for e in &plan.excluded {
        outln!("  excluded  {}=={}  ({})", e.package, e.version, e.reason);
    }
    for r in &plan.replaced {
        outln!(
            "  replaces  {}=={}  (preinstalled on target) with {}",
            r.package,
            r.preinstalled,
            r.version
        );
    }
    let unknown = if sizes.unknown.is_empty() {
        String::new()
    } else {
        format!(", plus {} file(s) of unknown size", sizes.unknown.len())
    };
    outln!(
        "  size      {} to download{unknown}; upload limit {} per file{}",
        human_size(sizes.total),
        human_size(sizes.max_file_bytes),
        if sizes.total > sizes.max_file_bytes {
            " (the archive will be split into volumes)"
        } else {
            ""
        }
    );
}
