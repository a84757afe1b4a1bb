//! `bundle build`: resolve, fetch, check and write a bundle; `--verify` runs
//! it in the target's sandbox image afterwards.

use std::path::PathBuf;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use bundle::assemble::Format;
use bundle::pipeline::{self as build, BuildOutput};
use bundle::Error;

use super::args::ResolveArgs;
use super::reporter::CliReporter;
use super::verify::finish_verify;
use super::{human_size, options_from, print_json};

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Zip,
    #[value(name = "tar.gz")]
    TarGz,
    Dir,
}

#[derive(Args)]
pub struct BuildArgs {
    #[command(flatten)]
    resolve: ResolveArgs,
    /// Output folder.
    #[arg(long, short = 'o', default_value = "dist", value_name = "DIR")]
    out: PathBuf,
    /// Archive format beside the bundle folder [default: zip; tar.gz for a target without Python].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Build exactly what `bundle lock` saved in <name>.lock.json.
    #[arg(long)]
    locked: bool,
    /// Then run the bundle in the target's sandbox image (needs Docker), as `bundle verify` does.
    #[arg(long)]
    verify: bool,
    /// The upload limit (e.g. 10MB, 512MiB), instead of the target's `max_file_bytes`.
    #[arg(long, value_name = "SIZE", value_parser = parse_max_upload)]
    max_upload: Option<u64>,
    /// Fail (exit 1) when the archive is over the upload limit, instead of splitting it into volumes.
    #[arg(long)]
    no_split: bool,
    /// Accept a --max-upload below 1 MB (it cuts the bundle into many tiny volumes).
    #[arg(long)]
    force: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

use bundle::config::target::MIN_FILE_BYTES;

pub fn parse_max_upload(s: &str) -> Result<u64, String> {
    bundle::assemble::parse_size(s)
}

pub async fn run(args: BuildArgs, quiet: bool, cancel: CancellationToken) -> Result<(), Error> {
    let sources = super::sources(&args.resolve, quiet);
    if args.resolve.target.len() <= 1 {
        let (doc, result) = run_one(
            &args,
            args.resolve.target.first(),
            &args.out,
            &sources,
            quiet,
            false,
            cancel,
        )
        .await;
        if args.json {
            if let Some(doc) = doc {
                print_json(&doc);
            }
        }
        return result;
    }
    // A matrix: one bundle per target in <out>/<target>/, built
    // concurrently (they share the cache), reported in the targets' order.
    let runs = args.resolve.target.iter().map(|t| {
        let out = args.out.join(target_folder(t));
        let (args, sources, cancel) = (&args, &sources, cancel.clone());
        async move { run_one(args, Some(t), &out, sources, quiet, true, cancel).await }
    });
    let results = futures_util::future::join_all(runs).await;
    let mut docs = Vec::new();
    let mut first_error = None;
    for (t, (doc, result)) in args.resolve.target.iter().zip(results) {
        let mut doc = doc.unwrap_or_else(|| serde_json::json!({"build": null, "verify": null}));
        doc["target"] = serde_json::Value::String(t.clone());
        if let Err(e) = result {
            doc["error"] = super::error_json(&e);
            if !quiet {
                eprintln!("error: target {t}: {e}");
            }
            first_error.get_or_insert(e);
        }
        docs.push(doc);
    }
    if args.json {
        print_json(&docs);
    }
    first_error.map_or(Ok(()), Err)
}

/// The folder of a target's bundles in a matrix build: the profile's name.
fn target_folder(target: &str) -> String {
    std::path::Path::new(target)
        .file_stem()
        .filter(|_| target.ends_with(".toml"))
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| target.to_string())
}

/// Build (and verify) for one target: its JSON document (when the build
/// got that far) and how it ended.
async fn run_one(
    args: &BuildArgs,
    target_arg: Option<&String>,
    out: &std::path::Path,
    sources: &[super::Source],
    quiet: bool,
    matrix: bool,
    cancel: CancellationToken,
) -> (Option<serde_json::Value>, Result<(), Error>) {
    let mut doc = None;
    let result = build_one(
        args, target_arg, out, sources, quiet, matrix, cancel, &mut doc,
    )
    .await;
    (doc, result)
}

#[allow(clippy::too_many_arguments)]
async fn build_one(
    args: &BuildArgs,
    target_arg: Option<&String>,
    out: &std::path::Path,
    sources: &[super::Source],
    quiet: bool,
    matrix: bool,
    cancel: CancellationToken,
    doc: &mut Option<serde_json::Value>,
) -> Result<(), Error> {
    let BuildArgs {
        resolve,
        format,
        locked,
        verify,
        max_upload,
        no_split,
        force,
        json,
        ..
    } = args;
    if let Some(limit) = max_upload.filter(|l| *l < MIN_FILE_BYTES && !*force) {
        return Err(Error::Usage(format!(
            "--max-upload {limit} bytes is below 1 MB ({MIN_FILE_BYTES} bytes): the bundle would be cut into many tiny volumes; write the limit with its unit (e.g. 10MB, 512MiB), or pass --force if the sandbox really takes no more"
        )));
    }
    let mut options = options_from(resolve);
    options.target = target_arg.cloned();
    options.out = out.to_path_buf();
    options.max_upload = *max_upload;
    options.split = !no_split;
    // `--locked --name NAME` and nothing else: the lock as it stands.
    let lock_only = *locked && options.args.is_empty() && options.requirement_files.is_empty();
    let (recipe, mut target) = if lock_only {
        build::load_lock_only(&options)?
    } else {
        build::load(&options)?
    };
    options.locked_as_is = lock_only;
    if *locked {
        let lock = PathBuf::from(format!("{}.lock.json", recipe.name));
        // The lock's own target, unless --target names one.
        if target_arg.is_none() {
            if let Some(source) = build::lock_target(&lock) {
                target = bundle::config::target::Target::load(&source)?;
            }
        }
        options.locked = Some(lock);
    }
    options.format = match format {
        Some(FormatArg::Zip) => Format::Zip,
        Some(FormatArg::TarGz) => Format::TarGz,
        Some(FormatArg::Dir) => Format::Dir,
        None => build::default_format(&target),
    };
    // In a matrix, bars would fight over the terminal: summaries only.
    let reporter = Arc::new(CliReporter::new(quiet || matrix));
    let started = Instant::now();
    let fetcher = build::fetcher(&options, reporter.clone())?;
    let result = build::build(
        &options,
        &recipe,
        &target,
        fetcher.clone(),
        reporter.clone(),
        cancel,
    )
    .await;
    reporter.finish();
    let output = result?;
    // One shape with or without --verify: {"build": ..., "verify": ...}.
    let mut build_json = serde_json::to_value(&output).expect("serializable");
    build_json["timings"] = serde_json::to_value(reporter.timings()).expect("serializable");
    build_json["sources"] = serde_json::to_value(sources).expect("serializable");
    *doc = Some(serde_json::json!({"build": build_json, "verify": null}));
    if !quiet {
        print_build_summary(&output, sources, started.elapsed());
    }
    if *verify {
        // The folder's uploads.json names exactly what the user uploads.
        let path = output.bundle_dir.clone();
        let result = bundle::verify::verify(
            &path,
            &target,
            fetcher,
            reporter.clone(),
            &bundle::verify::VerifyOptions {
                index_url: options.index_url.clone(),
                keep: false,
                fresh: false,
            },
        )
        .await;
        reporter.finish();
        let report = result?;
        *doc = Some(serde_json::json!({"build": build_json, "verify": report}));
        return finish_verify(report, *json, quiet);
    }
    Ok(())
}

/// Print at most 15 lines, then how many more there are.
fn print_cut(lines: Vec<String>) {
    const LIST: usize = 15;
    for l in lines.iter().take(LIST) {
        eprintln!("{l}");
    }
    if lines.len() > LIST {
        eprintln!(
            "            ... and {} more (see manifest.json)",
            lines.len() - LIST
        );
    }
}

fn print_build_summary(out: &BuildOutput, sources: &[super::Source], elapsed: Duration) {
    let m = &out.manifest;
    let t = &m.target;
    eprintln!(
        "Built {} for {} ({}, glibc {}, Python {}) in {:.1}s",
        m.name,
        t.name,
        t.platform,
        t.glibc,
        t.python,
        elapsed.as_secs_f64()
    );
    eprintln!("  from      {}", super::sources_line(sources));
    let mut wheels: Vec<_> = m
        .files
        .iter()
        .filter(|f| f.kind == bundle::assemble::FileKind::Wheel)
        .collect();
    wheels.sort_by(|a, b| a.package.cmp(&b.package));
    if !wheels.is_empty() {
        let size: u64 = wheels.iter().map(|w| w.size).sum();
        eprintln!("  wheels    {} ({})", wheels.len(), human_size(size));
        let lines = wheels.iter().map(|w| {
            format!(
                "            {} {}",
                w.package.as_deref().unwrap_or(""),
                w.version.as_deref().unwrap_or("")
            )
        });
        print_cut(lines.collect());
    }
    let kind = |k| m.files.iter().filter(move |f| f.kind == k);
    for b in kind(bundle::assemble::FileKind::Binary) {
        let needs = match (&b.glibc, &b.needed) {
            (Some(g), _) => format!("needs glibc {g}"),
            (None, Some(n)) if n.is_empty() => "static".to_string(),
            (None, Some(_)) => "dynamic, no versioned glibc symbols".to_string(),
            (None, None) => "not ELF".to_string(),
        };
        eprintln!(
            "  binary    {} {} ({needs})",
            b.path,
            b.version.as_deref().unwrap_or("")
        );
    }
    let lines = kind(bundle::assemble::FileKind::Library).map(|l| {
        format!(
            "  library   {} ({} {})",
            l.path,
            l.package.as_deref().unwrap_or("?"),
            l.version.as_deref().unwrap_or("")
        )
    });
    print_cut(lines.collect());
    if !m.excluded.is_empty() {
        let names: Vec<String> = m
            .excluded
            .iter()
            .map(|e| format!("{} {}", e.package, e.version))
            .collect();
        eprintln!("  excluded  {} (preinstalled on target)", names.join(", "));
    }
    for r in &m.replaced {
        eprintln!(
            "  replaces  {} {} (preinstalled on target) with {}",
            r.package, r.preinstalled, r.version
        );
    }
    print_sizes(m);
    eprintln!("  folder    {}/", out.bundle_dir.display());
    print_uploads(out);
}

/// The largest files, and each kind's share of the bundle.
fn print_sizes(m: &bundle::assemble::Manifest) {
    use bundle::assemble::FileKind;
    let total: u64 = m.files.iter().map(|f| f.size).sum();
    if total == 0 {
        return;
    }
    let share =
        |k: FileKind| -> u64 { m.files.iter().filter(|f| f.kind == k).map(|f| f.size).sum() };
    let parts: Vec<String> = [
        ("wheels", share(FileKind::Wheel)),
        ("binaries", share(FileKind::Binary)),
        ("libraries", share(FileKind::Library)),
        ("other", share(FileKind::File)),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{what} {}%", (n * 100 + total / 2) / total))
    .collect();
    eprintln!("  size      {} ({})", human_size(total), parts.join(", "));
    let mut largest: Vec<_> = m.files.iter().collect();
    largest.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
    let list: Vec<String> = largest
        .iter()
        .take(3)
        .map(|f| {
            format!(
                "{} {}",
                f.path.rsplit('/').next().unwrap_or(&f.path),
                human_size(f.size)
            )
        })
        .collect();
    eprintln!("  largest   {}", list.join(", "));
}

/// The files to upload, in order, and the line that says what to do.
fn print_uploads(out: &BuildOutput) {
    let d = &out.delivery;
    let prompt = out.bundle_dir.join("PROMPT.txt");
    let dir = out.bundle_dir.parent().unwrap_or(std::path::Path::new(""));
    match &d.archive {
        _ if d.uploads.is_empty() => {
            eprintln!(
                "Nothing to upload: everything asked for is already on target {}.",
                out.manifest.target.name
            );
        }
        Some(a) if d.split() => {
            eprintln!(
                "  archive   {} ({}), over the {} upload limit: split into {} volumes",
                a.path,
                human_size(a.size),
                human_size(d.max_file_bytes),
                d.uploads.len()
            );
            for u in &d.uploads {
                eprintln!(
                    "  upload    {} ({})",
                    dir.join(&u.path).display(),
                    human_size(u.size)
                );
            }
            eprintln!(
                "Upload these {} files, then paste {} into the chat.",
                d.uploads.len(),
                prompt.display()
            );
        }
        Some(a) => {
            eprintln!(
                "  archive   {} ({})",
                dir.join(&a.path).display(),
                human_size(a.size)
            );
            eprintln!(
                "Upload {}, then paste {} into the chat.",
                dir.join(&a.path).display(),
                prompt.display()
            );
        }
        None => {
            eprintln!(
                "Upload the folder's files ({} listed in {}), then paste {} into the chat.",
                d.uploads.len(),
                out.bundle_dir
                    .join(bundle::assemble::UPLOADS_JSON)
                    .display(),
                prompt.display()
            );
        }
    }
}
