//! `bundle verify`: run a bundle in the target's sandbox image.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use bundle::config::target::{self, Target};
use bundle::pipeline::{self as build, Options};
use bundle::verify::{Item, Status};
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

/// `  (12 pass, 1 fail, 2 skipped)` for a step with items.
fn item_counts(items: &[Item]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let count = |s: Status| items.iter().filter(|i| i.status == s).count();
    let mut parts = vec![format!("{} pass", count(Status::Pass))];
    for (s, word) in [(Status::Fail, "fail"), (Status::Skipped, "skipped")] {
        if count(s) > 0 {
            parts.push(format!("{} {word}", count(s)));
        }
    }
    format!("  ({})", parts.join(", "))
}

/// The names of the items that passed, as many as fit in `width`
/// characters, then how many more.
fn passed_line(items: &[Item], width: usize) -> Option<String> {
    let names: Vec<&str> = items
        .iter()
        .filter(|i| i.status == Status::Pass)
        .map(|i| i.name.as_str())
        .collect();
    let mut line = String::new();
    for (n, name) in names.iter().enumerate() {
        let more = names.len() - n;
        if !line.is_empty() && line.len() + name.len() + 2 > width {
            return Some(format!("{line}, ... ({more} more)"));
        }
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(name);
    }
    (!line.is_empty()).then_some(line)
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
                "  {:<width$}  {:<6}  {:>7.1}s{}",
                name,
                if s.ok { "ok" } else { "FAILED" },
                s.seconds,
                item_counts(&s.items)
            );
            // What failed or was skipped, by name; then what passed, on
            // one line.
            for i in s.items.iter().filter(|i| i.status != Status::Pass) {
                let word = if i.status == Status::Fail {
                    "FAIL"
                } else {
                    "skipped"
                };
                eprintln!("      {word} {}", i.name);
            }
            if let Some(line) = passed_line(&s.items, 100) {
                eprintln!("      ok: {line}");
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_are_named_on_one_line_then_counted() {
        let item = |n: &str, s: Status| Item::new(n, s, "");
        let items = vec![
            item("import app", Status::Pass),
            item("import gui", Status::Skipped),
            item("import dep", Status::Pass),
            item("import numpy", Status::Pass),
        ];
        assert_eq!(
            passed_line(&items, 100).as_deref(),
            Some("import app, import dep, import numpy")
        );
        assert_eq!(
            passed_line(&items, 25).as_deref(),
            Some("import app, import dep, ... (1 more)")
        );
        assert_eq!(passed_line(&items[1..2], 100), None);
        assert_eq!(item_counts(&items), "  (3 pass, 1 skipped)");
    }
}
