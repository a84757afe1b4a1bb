//! The `bundle` command line: parses arguments, draws progress, prints
//! results. All the work is in the library.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use bundle::assemble::Format;
use bundle::build::{self, BuildOutput, Options};
use bundle::cache::Cache;
use bundle::report::{Reporter, Stage};
use bundle::target::{self, Target};
use bundle::{check, recipe, Error};

#[derive(Parser)]
#[command(
    name = "bundle",
    version,
    about = "Upload-ready bundles for offline sandboxes: resolved, fetched and checked for the target machine",
    after_help = "Examples:\n  bundle build sqlite-utils\n  bundle build sqlite-utils --target chatgpt-2023\n  bundle build \"httpx[http2]<1\" rich\n  bundle plan sqlite-utils --json"
)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars or summaries; errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ResolveArgs {
    /// Recipe names or paths, and/or PEP 508 requirements.
    #[arg(required = true, value_name = "RECIPE|REQUIREMENT")]
    items: Vec<String>,
    /// Target profile: a built-in name (see `bundle targets`) or a .toml file.
    #[arg(long, short = 't', value_name = "NAME|FILE")]
    target: Option<String>,
    /// Folder of recipes (default: ./recipes, then the built-in ones).
    #[arg(long, value_name = "DIR")]
    recipes: Option<PathBuf>,
    /// Python package index (PEP 691 JSON simple API).
    #[arg(long, env = "PIP_INDEX_URL", value_name = "URL", default_value = bundle::index::DEFAULT_INDEX)]
    index_url: String,
    /// GitHub API base, for `version = "latest"` releases.
    #[arg(long, env = "BUNDLE_GITHUB_API", value_name = "URL", default_value = bundle::release::GITHUB_API, hide = true)]
    github_api: String,
    /// Use only the cache; never touch the network.
    #[arg(long)]
    offline: bool,
    /// Revalidate cached index pages even when they are fresh.
    #[arg(long)]
    refresh: bool,
    /// Let the bundle carry other versions of packages preinstalled on the target.
    #[arg(long)]
    upgrade_preinstalled: bool,
    /// Accept index files and releases that come without a sha256 (the
    /// bundle records the hash of what was downloaded).
    #[arg(long)]
    allow_unhashed: bool,
    /// Name of the bundle (default: the recipe or requirement names).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Zip,
    #[value(name = "tar.gz")]
    TarGz,
    Dir,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve, fetch, check and write a bundle (dist/<name>/ and dist/<name>.zip).
    Build {
        #[command(flatten)]
        resolve: ResolveArgs,
        /// Output folder.
        #[arg(long, short = 'o', default_value = "dist", value_name = "DIR")]
        out: PathBuf,
        /// Archive format beside the bundle folder.
        #[arg(long, value_enum, default_value = "zip")]
        format: FormatArg,
        /// Build exactly what `bundle lock` saved in <name>.lock.json.
        #[arg(long)]
        locked: bool,
        /// Then run the bundle in the target's sandbox image (needs Docker), as `bundle verify` does.
        #[arg(long)]
        verify: bool,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Resolve only and print the Plan; downloads no bundle files.
    Plan {
        #[command(flatten)]
        resolve: ResolveArgs,
        /// Print the Plan as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Resolve and save the Plan as <name>.lock.json, for `build --locked`.
    Lock {
        #[command(flatten)]
        resolve: ResolveArgs,
        /// Where to write the lock file (default: ./<name>.lock.json).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Run a bundle in the target's sandbox image: no network, the sandbox user, its checks.
    Verify {
        /// A bundle folder or archive.
        bundle: PathBuf,
        /// Target profile (default: the one named in the bundle's manifest).
        #[arg(long, short = 't', value_name = "NAME|FILE")]
        target: Option<String>,
        /// Index for the target's preinstalled packages the bundle relies on.
        #[arg(long, env = "PIP_INDEX_URL", default_value = bundle::index::DEFAULT_INDEX, value_name = "URL")]
        index_url: String,
        /// Leave the container running for inspection and print its id.
        #[arg(long)]
        keep: bool,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Report what ELF files need (libraries, highest GLIBC) and whether they run on the target.
    Inspect {
        /// A file, folder, wheel or zip.
        path: PathBuf,
        #[arg(long, short = 't', value_name = "NAME|FILE")]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the built-in recipes.
    Recipes {
        #[arg(long)]
        json: bool,
    },
    /// List the built-in target profiles.
    Targets {
        #[arg(long)]
        json: bool,
    },
    /// Target profiles.
    #[command(subcommand)]
    Target(TargetCmd),
    /// The download cache.
    Cache {
        #[command(subcommand)]
        command: CacheCmd,
    },
}

#[derive(Subcommand)]
enum TargetCmd {
    /// Print a Python snippet to run in a sandbox; it prints that sandbox's target profile.
    Capture,
}

#[derive(Subcommand)]
enum CacheCmd {
    /// Print the cache folder.
    Dir,
    /// Print the cache's size.
    Info,
    /// Remove everything in the cache.
    Clean,
}

/// Draws progress on stderr (only when it is a terminal).
struct CliReporter {
    multi: MultiProgress,
    spinner: ProgressBar,
    bars: Mutex<HashMap<u64, ProgressBar>>,
    started: Instant,
    /// Files the fetch stage will bring, and how many are done.
    planned: std::sync::atomic::AtomicUsize,
    done: std::sync::atomic::AtomicUsize,
}

impl CliReporter {
    fn new(quiet: bool) -> CliReporter {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let multi = MultiProgress::with_draw_target(target);
        let spinner = multi.add(ProgressBar::new_spinner());
        spinner.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg}").expect("valid template"),
        );
        spinner.enable_steady_tick(Duration::from_millis(100));
        CliReporter {
            multi,
            spinner,
            bars: Mutex::new(HashMap::new()),
            started: Instant::now(),
            planned: Default::default(),
            done: Default::default(),
        }
    }

    fn finish(&self) {
        self.spinner.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Reporter for CliReporter {
    fn stage(&self, stage: Stage) {
        self.spinner.set_message(stage.as_str().to_string());
        tracing::info!(
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "stage: {}",
            stage.as_str()
        );
    }
    fn resolving(&self, package: &str) {
        self.spinner.set_message(format!("resolving {package}"));
        tracing::debug!("resolving {package}");
    }
    fn download_start(&self, id: u64, label: &str, total: Option<u64>) {
        let bar = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
        bar.set_style(
            ProgressStyle::with_template(
                "  {bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {wide_msg}",
            )
            .expect("valid template"),
        );
        bar.set_message(label.to_string());
        self.bars.lock().expect("poisoned").insert(id, bar);
        tracing::info!("downloading {label}");
    }
    fn download_progress(&self, id: u64, bytes: u64) {
        if let Some(b) = self.bars.lock().expect("poisoned").get(&id) {
            b.inc(bytes);
        }
    }
    fn fetch_planned(&self, files: usize, bytes: Option<u64>) {
        self.planned.store(files, Ordering::Relaxed);
        let size = bytes
            .map(|b| format!(", {}", human_size(b)))
            .unwrap_or_default();
        self.spinner
            .set_message(format!("fetching {files} files{size}"));
    }
    fn download_done(&self, id: u64) {
        if let Some(b) = self.bars.lock().expect("poisoned").remove(&id) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        let planned = self.planned.load(Ordering::Relaxed);
        if planned > 0 {
            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            self.spinner.set_message(format!(
                "fetching: {} of {planned} downloaded",
                done.min(planned)
            ));
        }
    }
    fn step(&self, what: &str) {
        self.spinner.set_message(what.to_string());
        tracing::info!("{what}");
    }
    fn step_done(&self, what: &str, seconds: f64) {
        tracing::info!("{what}: {seconds:.1} s");
    }
    fn warn(&self, message: &str) {
        self.multi.suspend(|| eprintln!("warning: {message}"));
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "bundle=info",
        2 => "bundle=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUNDLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn options_from(r: &ResolveArgs) -> Options {
    Options {
        args: r.items.clone(),
        target: r.target.clone(),
        recipes_dir: r.recipes.clone(),
        index_url: r.index_url.clone(),
        github_api: r.github_api.clone(),
        offline: r.offline,
        refresh: r.refresh,
        upgrade_preinstalled: r.upgrade_preinstalled,
        allow_unhashed: r.allow_unhashed,
        name: r.name.clone(),
        ..Options::default()
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

macro_rules! outln {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        out(&line);
    }};
}

/// Print to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
}

fn print_json<T: serde::Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("serializable");
    text.push('\n');
    out(&text);
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
fn finish_verify(report: bundle::verify::Report, json: bool, quiet: bool) -> Result<(), Error> {
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
    }
    if let Some(id) = &report.container {
        eprintln!("kept container {id}: docker exec -it {id} sh; remove it with docker rm -f {id}");
    }
    match report.error() {
        None => {
            if !json && !quiet {
                eprintln!("All steps passed.");
            }
            Ok(())
        }
        Some(e) => {
            if let Some(s) = report.failure() {
                eprintln!("\n--- {} ---", s.name);
                if let Some(c) = &s.command {
                    eprintln!("$ {c}");
                }
                eprintln!("{}\n", s.output.trim_end());
            }
            Err(e.into())
        }
    }
}

fn print_build_summary(out: &BuildOutput, elapsed: Duration) {
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
    let mut wheels: Vec<_> = m
        .files
        .iter()
        .filter(|f| f.kind == bundle::assemble::FileKind::Wheel)
        .collect();
    wheels.sort_by(|a, b| a.package.cmp(&b.package));
    if !wheels.is_empty() {
        let size: u64 = wheels.iter().map(|w| w.size).sum();
        eprintln!("  wheels    {} ({})", wheels.len(), human_size(size));
        const LIST: usize = 15;
        for w in wheels.iter().take(LIST) {
            eprintln!(
                "            {} {}",
                w.package.as_deref().unwrap_or(""),
                w.version.as_deref().unwrap_or("")
            );
        }
        if wheels.len() > LIST {
            eprintln!(
                "            ... and {} more (see manifest.json)",
                wheels.len() - LIST
            );
        }
    }
    for b in m
        .files
        .iter()
        .filter(|f| f.kind == bundle::assemble::FileKind::Binary)
    {
        eprintln!(
            "  binary    {} {} (needs glibc {})",
            b.path,
            b.version.as_deref().unwrap_or(""),
            b.glibc.as_deref().unwrap_or("-")
        );
    }
    for l in m
        .files
        .iter()
        .filter(|f| f.kind == bundle::assemble::FileKind::Library)
    {
        eprintln!(
            "  library   {} ({} {})",
            l.path,
            l.package.as_deref().unwrap_or("?"),
            l.version.as_deref().unwrap_or("")
        );
    }
    if !m.excluded.is_empty() {
        let names: Vec<String> = m
            .excluded
            .iter()
            .map(|e| format!("{} {}", e.package, e.version))
            .collect();
        eprintln!("  excluded  {} (preinstalled on target)", names.join(", "));
    }
    eprintln!("  folder    {}/", out.bundle_dir.display());
    if let Some(a) = &out.archive {
        eprintln!(
            "  archive   {} ({})",
            a.display(),
            human_size(out.archive_size.unwrap_or(0))
        );
        eprintln!(
            "Upload {}, then paste {} into the chat.",
            a.display(),
            out.bundle_dir.join("PROMPT.txt").display()
        );
    } else {
        eprintln!(
            "Upload the folder's files, then paste {} into the chat.",
            out.bundle_dir.join("PROMPT.txt").display()
        );
    }
}

const CAPTURE_SNIPPET: &str = r#"# Run this in the sandbox (e.g. paste it into the chat as Python code).
# It prints a bundle target profile for the machine it runs on.
import os, platform, sys
try:
    from importlib import metadata as md
    dists = sorted({(d.metadata["Name"], d.version) for d in md.distributions() if d.metadata["Name"]})
except Exception:
    dists = []
libc = (os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0.0").split()[-1]
arch = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}.get(platform.machine(), platform.machine())
print('description = "captured from %s"' % platform.platform())
print('image = "ubuntu:20.04"  # the closest public image; adjust')
print('platform = "%s"' % arch)
print('glibc = "%s"' % ".".join(libc.split(".")[:2]))
print('python = "%s"' % platform.python_version())
print('upload_dir = "%s"' % os.getcwd())
print('preinstalled = [')
for n, v in dists:
    print('  "%s==%s",' % (n, v))
print(']')
"#;

/// Resolve the arguments to a Plan, with progress on stderr.
async fn resolve_plan(
    resolve: &ResolveArgs,
    quiet: bool,
    cancel: Arc<AtomicBool>,
) -> Result<bundle::plan::Plan, Error> {
    let options = options_from(resolve);
    let (recipe, target) = build::load(&options)?;
    let reporter = Arc::new(CliReporter::new(quiet));
    let fetcher = build::fetcher(&options, reporter.clone())?;
    let result = build::make_plan(&options, &recipe, &target, fetcher, cancel).await;
    reporter.finish();
    result
}

async fn run(cli: Cli, cancel: Arc<AtomicBool>) -> Result<(), Error> {
    match cli.command {
        Command::Build {
            resolve,
            out,
            format,
            locked,
            verify,
            json,
        } => {
            let mut options = options_from(&resolve);
            options.out = out;
            options.format = match format {
                FormatArg::Zip => Format::Zip,
                FormatArg::TarGz => Format::TarGz,
                FormatArg::Dir => Format::Dir,
            };
            let (recipe, target) = build::load(&options)?;
            if locked {
                options.locked = Some(PathBuf::from(format!("{}.lock.json", recipe.name)));
            }
            let reporter = Arc::new(CliReporter::new(cli.quiet));
            let started = Instant::now();
            let fetcher = build::fetcher(&options, reporter.clone())?;
            let result = build::build(&options, &recipe, &target, fetcher.clone(), cancel).await;
            reporter.finish();
            let output = result?;
            if json && !verify {
                print_json(&output);
            }
            if !cli.quiet {
                print_build_summary(&output, started.elapsed());
            }
            if verify {
                let path = output.archive.clone().unwrap_or(output.bundle_dir.clone());
                let result = bundle::verify::verify(
                    &path,
                    &target,
                    fetcher,
                    &bundle::verify::VerifyOptions {
                        index_url: options.index_url.clone(),
                        keep: false,
                    },
                )
                .await;
                reporter.finish();
                let report = result?;
                if json {
                    print_json(&serde_json::json!({"build": output, "verify": report}));
                }
                return finish_verify(report, json, cli.quiet);
            }
            Ok(())
        }
        Command::Plan { resolve, json } => {
            let plan = resolve_plan(&resolve, cli.quiet, cancel).await?;
            if json {
                print_json(&plan);
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
            }
            Ok(())
        }
        Command::Lock { resolve, output } => {
            let plan = resolve_plan(&resolve, cli.quiet, cancel).await?;
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{}.lock.json", plan.name)));
            let mut text = serde_json::to_string_pretty(&plan).expect("serializable");
            text.push('\n');
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            Cache::new(&dir)
                .write_atomic(&path, text.as_bytes())
                .map_err(|source| {
                    Error::Assemble(bundle::assemble::AssembleError::Io {
                        path: path.clone(),
                        source,
                    })
                })?;
            if !cli.quiet {
                eprintln!(
                    "Locked {} ({} wheels, {} releases) in {}",
                    plan.name,
                    plan.wheels.len(),
                    plan.releases.len(),
                    path.display()
                );
            }
            Ok(())
        }
        Command::Inspect { path, target, json } => {
            let target = Target::load(target.as_deref().unwrap_or(target::DEFAULT_TARGET))?;
            let infos = check::scan(&path)?;
            let verdicts = check::judge_all(&target, infos, &Default::default());
            let ok = verdicts.iter().all(|v| v.ok);
            if json {
                print_json(&serde_json::json!({
                    "target": target.summary(),
                    "ok": ok,
                    "files": verdicts,
                }));
            } else {
                if verdicts.is_empty() {
                    outln!("no ELF files in {}", path.display());
                }
                for v in &verdicts {
                    outln!("{}  {}", if v.ok { "ok  " } else { "FAIL" }, v.elf.path);
                    outln!(
                        "      {}, glibc {}{}{}",
                        v.elf.machine,
                        v.elf.glibc.as_deref().unwrap_or("-"),
                        v.elf
                            .glibcxx
                            .as_deref()
                            .map(|g| format!(", GLIBCXX {g}"))
                            .unwrap_or_default(),
                        v.elf
                            .interpreter
                            .as_deref()
                            .map(|i| format!(", interpreter {i}"))
                            .unwrap_or_default()
                    );
                    if !v.elf.needed.is_empty() {
                        outln!("      needs {}", v.elf.needed.join(", "));
                    }
                    for e in &v.errors {
                        outln!("      error: {e}");
                    }
                    for w in &v.warnings {
                        outln!("      warning: {w}");
                    }
                    if !v.missing.is_empty() {
                        outln!("      warning: target may lack {}", v.missing.join(", "));
                    }
                }
            }
            if ok {
                Ok(())
            } else {
                Err(Error::Check(check::CheckError::Inspect {
                    target: target.name.clone(),
                    failed: verdicts.iter().filter(|v| !v.ok).count(),
                    total: verdicts.len(),
                }))
            }
        }
        Command::Recipes { json } => {
            let list = recipe::builtin();
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|(n, d)| serde_json::json!({"name": n, "description": d}))
                    .collect();
                print_json(&v);
            } else {
                for (n, d) in list {
                    outln!("{n:<24} {d}");
                }
            }
            Ok(())
        }
        Command::Targets { json } => {
            let mut rows = Vec::new();
            for n in target::builtin_names() {
                let t = Target::load(&n)?;
                rows.push(t);
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "name": t.name,
                            "description": t.description,
                            "platform": t.platform,
                            "glibc": t.glibc_str(),
                            "python": t.python.to_string(),
                            "preinstalled": t.preinstalled.len(),
                            "default": t.name == target::DEFAULT_TARGET,
                        })
                    })
                    .collect();
                print_json(&v);
            } else {
                for t in rows {
                    let default = if t.name == target::DEFAULT_TARGET {
                        " (default)"
                    } else {
                        ""
                    };
                    outln!(
                        "{:<20} {} glibc {} Python {}, {} preinstalled{default}\n{:<20} {}",
                        t.name,
                        t.platform,
                        t.glibc_str(),
                        t.python,
                        t.preinstalled.len(),
                        "",
                        t.description
                    );
                }
            }
            Ok(())
        }
        Command::Verify {
            bundle: path,
            target,
            index_url,
            keep,
            json,
        } => {
            let target = match target {
                Some(t) => Target::load(&t)?,
                None => Target::load(&manifest_target(&path)?)?,
            };
            let reporter = Arc::new(CliReporter::new(cli.quiet));
            let options = Options {
                index_url: index_url.clone(),
                ..Options::default()
            };
            let fetcher = build::fetcher(&options, reporter.clone())?;
            let result = bundle::verify::verify(
                &path,
                &target,
                fetcher,
                &bundle::verify::VerifyOptions { index_url, keep },
            )
            .await;
            reporter.finish();
            let report = result?;
            if json {
                print_json(&report);
            }
            finish_verify(report, json, cli.quiet)
        }
        Command::Target(TargetCmd::Capture) => {
            out(CAPTURE_SNIPPET);
            Ok(())
        }
        Command::Cache { command } => {
            let cache = Cache::new(bundle::cache::default_dir());
            match command {
                CacheCmd::Dir => outln!("{}", cache.root().display()),
                CacheCmd::Info => {
                    let info = cache.info();
                    outln!(
                        "{}: {} files, {}",
                        cache.root().display(),
                        info.files,
                        human_size(info.bytes)
                    );
                }
                CacheCmd::Clean => {
                    let info = cache.info();
                    cache.clean().map_err(|source| {
                        Error::Assemble(bundle::assemble::AssembleError::Io {
                            path: cache.root().to_path_buf(),
                            source,
                        })
                    })?;
                    eprintln!("removed {} files ({})", info.files, human_size(info.bytes));
                }
            }
            Ok(())
        }
    }
}

/// The first of SIGINT, SIGTERM and SIGHUP to arrive: its name and number.
async fn interrupted() -> (&'static str, i32) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let next = |s: &mut Option<tokio::signal::unix::Signal>| {
        let s = s.take();
        async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ("SIGINT", 2),
        _ = next(&mut term) => ("SIGTERM", 15),
        _ = next(&mut hup) => ("SIGHUP", 1),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let result = runtime.block_on(async {
        // SIGTERM (CI cancellation, `timeout`, systemd, `docker stop`) and
        // SIGHUP end the run as Ctrl-C does: the work is dropped, which
        // removes its temporary files, then its containers are removed.
        let result = tokio::select! {
            r = run(cli, cancel.clone()) => r,
            (name, number) = interrupted() => {
                cancel.store(true, Ordering::Relaxed);
                Err(Error::Interrupted { name, number })
            }
        };
        // Containers of a step cut short by an error or Ctrl-C.
        let left = bundle::docker::remove_leftovers().await;
        if left > 0 {
            tracing::info!("removed {left} container(s) left by an interrupted step");
        }
        result
    });
    // Dropping the work future above removed its temporary files; do not
    // wait for background fetches.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
