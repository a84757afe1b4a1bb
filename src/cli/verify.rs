//! `bundle verify`: run a bundle in the target's sandbox image.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use bundle::config::target::{self, Target};
use bundle::pipeline::{self as build, Options};
use bundle::Error;

use super::print_json;
use super::reporter::CliReporter;

#[derive(Args)]
pub struct VerifyArgs {
    /// A bundle folder or archive.
    bundle: PathBuf,
    /// Target profile (default: the one named in the bundle's manifest).
    #[arg(long, short = 't', value_name = "NAME|FILE")]
    target: Option<String>,
    /// Index for the target's preinstalled packages the bundle relies on.
    #[arg(long, env = "PIP_INDEX_URL", default_value = bundle::resolve::index::DEFAULT_INDEX, value_name = "URL")]
    index_url: String,
    /// Leave the container running for inspection and print its id.
    #[arg(long)]
    keep: bool,
    /// Run again even when an identical run (same uploads, target and
    /// sandbox image) passed before.
    #[arg(long)]
    fresh: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: VerifyArgs, quiet: bool) -> Result<(), Error> {
    let VerifyArgs {
        bundle: path,
        target,
        index_url,
        keep,
        fresh,
        json,
    } = args;
    let target = match target {
        Some(t) => Target::load(&t)?,
        None => Target::load(&manifest_target(&path)?)?,
    };
    let reporter = Arc::new(CliReporter::new(quiet));
    let options = Options {
        index_url: index_url.clone(),
        ..Options::default()
    };
    let fetcher = build::fetcher(&options, reporter.clone())?;
    let result = bundle::verify::verify(
        &path,
        &target,
        fetcher,
        reporter.clone(),
        &bundle::verify::VerifyOptions {
            index_url,
            keep,
            fresh,
        },
    )
    .await;
    reporter.finish();
    let report = result?;
    if json {
        print_json(&report);
    }
    finish_verify(report, json, quiet)
}

/// The target a bundle was made for, from its manifest (folder or archive).
fn manifest_target(path: &std::path::Path) -> Result<String, Error> {
    let name = bundle::verify::manifest_of(path)?.target.name;
    if target::builtin_names().contains(&name) {
        Ok(name)
    } else {
        Err(Error::Usage(format!(
            "the bundle was made for target `{name}`, which is not built in: pass --target <its .toml file>"
        )))
    }
}

/// Print the verify table; exit 1 (with the failing step) when a step failed.
pub fn finish_verify(report: bundle::verify::Report, json: bool, quiet: bool) -> Result<(), Error> {
    if !json && !quiet {
        eprintln!(
            "Verify {} in {} ({}, user {}, no network, upload folder {})",
            report.bundle, report.target, report.image, report.user, report.upload_dir
        );
        let width = report
            .steps
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(4)
            .min(50);
        eprintln!("  {:<width$}  {:<6}  {:>8}", "step", "result", "time");
        for s in &report.steps {
            let name: String = s.name.chars().take(50).collect();
            eprintln!(
                "  {:<width$}  {:<6}  {:>7.1}s",
                name,
                if s.ok { "ok" } else { "FAILED" },
                s.seconds
            );
        }
        if report.cached {
            eprintln!(
                "(the report of an identical earlier run: same uploads, target and sandbox image; --fresh runs it again)"
            );
        }
    }
    // The kept container's line stands last, apart from the table.
    let kept = || {
        if let Some(id) = &report.container {
            eprintln!(
                "\nkept container {id}: docker exec -it {id} sh; remove it with docker rm -f {id}"
            );
        }
    };
    match report.error() {
        None => {
            if !json && !quiet {
                eprintln!("All steps passed.");
            }
            kept();
            Ok(())
        }
        Some(e) => {
            if let Some(s) = report.failure() {
                eprintln!("\n--- {} ---", s.name);
                if let Some(c) = &s.command {
                    eprintln!("$ {c}");
                }
                eprintln!("{}", s.output.trim_end());
            }
            kept();
            eprintln!();
            Err(e.into())
        }
    }
}
