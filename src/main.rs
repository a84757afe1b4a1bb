//! The `bundle` command line: arguments and dispatch. Each command is a
//! file in `cli/`; all the work is in the library.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use bundle::{Diagnose, Error};

#[derive(Parser)]
#[command(
    name = "bundle",
    version,
    about = "Upload-ready bundles for offline sandboxes: resolved, fetched and checked for the target machine",
    after_help = "Examples:\n  bundle build sqlite-utils\n  bundle build sqlite-utils --target chatgpt-2023\n  bundle build \"httpx[http2]<1\" rich\n  bundle plan sqlite-utils --json\n\nExit codes:\n  0    ok\n  1    the work failed (no resolution, a hash mismatch, an incompatible binary, a failed verify...)\n  2    bad usage or input (arguments, recipe, target profile, requirements file)\n  129  stopped by SIGHUP\n  130  stopped by Ctrl-C (SIGINT)\n  143  stopped by SIGTERM"
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

/// What every resolving command takes.
#[derive(Args, Clone)]
pub struct ResolveArgs {
    /// Recipe names or paths, PEP 508 requirements, apt:PACKAGE[=PROGRAM,...],
    /// or a project (`.` or a pyproject.toml).
    #[arg(value_name = "RECIPE|REQUIREMENT")]
    items: Vec<String>,
    /// Read requirements from FILE, in pip's format (repeatable).
    #[arg(short = 'r', long = "requirement", value_name = "FILE")]
    requirement: Vec<PathBuf>,
    /// Constrain versions with FILE, in pip's format (repeatable).
    #[arg(short = 'c', long = "constraint", value_name = "FILE")]
    constraint: Vec<PathBuf>,
    /// Add a project's optional dependencies NAME (with `.` or a pyproject.toml).
    #[arg(long, value_name = "NAME")]
    extra: Vec<String>,
    /// With a project (`.` or a pyproject.toml): bundle its dependencies
    /// only, not the project itself (which is otherwise built, in the
    /// target's image).
    #[arg(long)]
    no_install_project: bool,
    /// Resolve as of DATE: only files uploaded up to then (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    exclude_newer: Option<String>,
    /// Target profile: a built-in name (see `bundle targets`) or a .toml
    /// file. `build` takes several, for one bundle per target.
    #[arg(long, short = 't', value_name = "NAME|FILE")]
    target: Vec<String>,
    /// Folder of recipes (default: ./recipes, then the built-in ones).
    #[arg(long, value_name = "DIR")]
    recipes: Option<PathBuf>,
    /// Python package index (PEP 691 JSON simple API).
    #[arg(long, env = "PIP_INDEX_URL", value_name = "URL", default_value = bundle::resolve::index::DEFAULT_INDEX)]
    index_url: String,
    /// GitHub API base, for `version = "latest"` releases.
    #[arg(long, env = "BUNDLE_GITHUB_API", value_name = "URL", default_value = bundle::stage::release::GITHUB_API, hide = true)]
    github_api: String,
    /// Cargo's sparse registry index, for `[[build]] crate = ...` recipes.
    #[arg(long, env = "BUNDLE_CRATES_INDEX", value_name = "URL", default_value = bundle::stage::crates::CRATES_INDEX)]
    crates_index: String,
    /// Use only the cache; never touch the network.
    #[arg(long)]
    offline: bool,
    /// Revalidate cached index pages even when they are fresh.
    #[arg(long)]
    refresh: bool,
    /// Packages with no wheel for the target: `build` them from their
    /// sdists in the target's image (needs Docker), or `refuse` them
    /// [default: refuse, or the recipe's `sdists`].
    #[arg(long, value_name = "build|refuse", value_parser = ["build", "refuse"])]
    sdists: Option<String>,
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

/// `YYYY-MM-DD`, or an RFC 3339 time that starts with one.
fn parse_date(s: &str) -> Result<String, String> {
    bundle::config::dates::exclude_newer(s)
}

#[derive(Subcommand)]
enum Command {
    /// Resolve, fetch, check and write a bundle (dist/<name>/ and dist/<name>.zip).
    Build(cli::build::BuildArgs),
    /// Resolve only and print the Plan; downloads no bundle files.
    Plan(cli::plan::PlanArgs),
    /// Resolve and save the Plan as <name>.lock.json, for `build --locked`.
    Lock(cli::lock::LockArgs),
    /// Run a bundle in the target's sandbox image: no network, the sandbox user, its checks.
    Verify(cli::verify::VerifyArgs),
    /// Report what ELF files need (libraries, highest GLIBC) and whether they run on the target.
    Inspect(cli::inspect::InspectArgs),
    /// List the built-in recipes; --show NAME prints one, --new a commented template.
    Recipes {
        /// Print the list as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Print this recipe's TOML (./recipes/NAME.toml or a built-in one).
        #[arg(long, value_name = "NAME", conflicts_with = "new")]
        show: Option<String>,
        /// Print a commented template with every key.
        #[arg(long)]
        new: bool,
    },
    /// List the built-in target profiles.
    Targets {
        /// Print the profiles as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Target profiles.
    #[command(subcommand)]
    Target(TargetCmd),
    /// The download cache.
    Cache {
        #[command(subcommand)]
        command: cli::cache::CacheCmd,
    },
}

#[derive(Subcommand)]
enum TargetCmd {
    /// Print a Python snippet to run in a sandbox; it prints that sandbox's target profile.
    Capture,
}

async fn run(cli: Cli, cancel: CancellationToken) -> Result<(), Error> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Build(args) => cli::build::run(args, quiet, cancel).await,
        Command::Plan(args) => cli::plan::run(args, quiet, cancel).await,
        Command::Lock(args) => cli::lock::run(args, quiet, cancel).await,
        Command::Verify(args) => cli::verify::run(args, quiet).await,
        Command::Inspect(args) => cli::inspect::run(args),
        Command::Recipes { json, show, new } => cli::recipes::run(json, show, new),
        Command::Targets { json } => cli::targets::run(json),
        Command::Target(TargetCmd::Capture) => cli::capture::run(),
        Command::Cache { command } => cli::cache::run(command),
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
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false)
        .init();
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

/// With `BUNDLE_REPORT_PEAK_MEMORY=1`, print this process's peak resident
/// memory (VmHWM) on stderr as it ends: how the tests measure that memory
/// stays bounded whatever a server or an archive sends.
fn report_peak_memory() {
    if std::env::var_os("BUNDLE_REPORT_PEAK_MEMORY").is_none_or(|v| v != "1") {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
        let kib = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim();
        eprintln!("bundle: peak memory {kib} KiB");
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core),
/// and memory freed in one is not reused by another: with downloads, file
/// writes and scans on several threads, peak memory for a 130 MB set of
/// wheels was 125–140 MB, against 90 MB with two arenas (measured; the time
/// did not change). Called before any thread starts.
fn fewer_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no other thread
    // exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    // `--json` anywhere: exactly one JSON document on stdout, whatever happens.
    let json = std::env::args().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            if json && code == 2 {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("");
                cli::usage_error_json(first.trim_start_matches("error: "));
            }
            return ExitCode::from(code);
        }
    };
    init_logging(cli.verbose);
    fewer_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking work here is short (DNS, file reads, one ELF scan at a
        // time, the solver); tokio's default of 512 threads only spreads
        // allocations over more malloc arenas.
        .max_blocking_threads(16)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cancel = CancellationToken::new();
    let result = runtime.block_on(async {
        // SIGTERM (CI cancellation, `timeout`, systemd, `docker stop`) and
        // SIGHUP end the run as Ctrl-C does: the work is dropped, which
        // removes its temporary files, then its containers are removed.
        let result = tokio::select! {
            r = run(cli, cancel.clone()) => r,
            (name, number) = interrupted() => {
                cancel.cancel();
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
    report_peak_memory();
    if json {
        cli::finish_json(result.as_ref().err());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in bundle::error::causes(&e) {
                eprintln!("  caused by: {cause}");
            }
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
