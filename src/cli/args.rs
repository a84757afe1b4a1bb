//! The command line's arguments: the commands and the options every
//! resolving command shares.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bundle",
    version,
    about = "Upload-ready bundles for offline sandboxes: resolved, fetched and checked for the target machine",
    after_help = "Examples:\n  bundle build sqlite-utils\n  bundle build sqlite-utils --target chatgpt-2023\n  bundle build \"httpx[http2]<1\" rich\n  bundle plan sqlite-utils --json\n\nExit codes:\n  0    ok\n  1    the work failed (no resolution, a hash mismatch, an incompatible binary, a failed verify...)\n  2    bad usage or input (arguments, recipe, target profile, requirements file)\n  129  stopped by SIGHUP\n  130  stopped by Ctrl-C (SIGINT)\n  143  stopped by SIGTERM"
)]
pub struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No progress bars or summaries; errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// What every resolving command takes.
#[derive(Args, Clone)]
pub struct ResolveArgs {
    /// Recipe names or paths, PEP 508 requirements, apt:PACKAGE[=PROGRAM,...],
    /// or a project (`.` or a pyproject.toml).
    #[arg(value_name = "RECIPE|REQUIREMENT")]
    pub items: Vec<String>,
    /// Read requirements from FILE, in pip's format (repeatable).
    #[arg(short = 'r', long = "requirement", value_name = "FILE")]
    pub requirement: Vec<PathBuf>,
    /// Constrain versions with FILE, in pip's format (repeatable).
    #[arg(short = 'c', long = "constraint", value_name = "FILE")]
    pub constraint: Vec<PathBuf>,
    /// Add a project's optional dependencies NAME (with `.` or a pyproject.toml).
    #[arg(long, value_name = "NAME")]
    pub extra: Vec<String>,
    /// With a project (`.` or a pyproject.toml): bundle its dependencies
    /// only, not the project itself (which is otherwise built, in the
    /// target's image).
    #[arg(long)]
    pub no_install_project: bool,
    /// Resolve as of DATE: only files uploaded up to then (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub exclude_newer: Option<String>,
    /// Target profile: a built-in name (see `bundle targets`) or a .toml
    /// file. `build` takes several, for one bundle per target.
    #[arg(long, short = 't', value_name = "NAME|FILE")]
    pub target: Vec<String>,
    /// Folder of recipes (default: ./recipes, then the built-in ones).
    #[arg(long, value_name = "DIR")]
    pub recipes: Option<PathBuf>,
    /// Python package index (PEP 691 JSON simple API).
    #[arg(long, env = "PIP_INDEX_URL", value_name = "URL", default_value = bundle::resolve::index::DEFAULT_INDEX)]
    pub index_url: String,
    /// GitHub API base, for `version = "latest"` releases.
    #[arg(long, env = "BUNDLE_GITHUB_API", value_name = "URL", default_value = bundle::stage::release::GITHUB_API, hide = true)]
    pub github_api: String,
    /// Cargo's sparse registry index, for `[[build]] crate = ...` recipes.
    #[arg(long, env = "BUNDLE_CRATES_INDEX", value_name = "URL", default_value = bundle::stage::crates::CRATES_INDEX)]
    pub crates_index: String,
    /// npm registry, for `npm:` items and `[npm]` recipes [default: npm's own].
    #[arg(long, env = "NPM_CONFIG_REGISTRY", value_name = "URL")]
    pub npm_registry: Option<String>,
    /// Use only the cache; never touch the network.
    #[arg(long)]
    pub offline: bool,
    /// Revalidate cached index pages even when they are fresh.
    #[arg(long)]
    pub refresh: bool,
    /// Packages with no wheel for the target: `build` them from their
    /// sdists in the target's image (needs Docker), or `refuse` them
    /// [default: refuse, or the recipe's `sdists`].
    #[arg(long, value_name = "build|refuse", value_parser = ["build", "refuse"])]
    pub sdists: Option<String>,
    /// Let the bundle carry other versions of packages preinstalled on the target.
    #[arg(long)]
    pub upgrade_preinstalled: bool,
    /// Accept index files and releases that come without a sha256 (the
    /// bundle records the hash of what was downloaded).
    #[arg(long)]
    pub allow_unhashed: bool,
    /// Name of the bundle (default: the recipe or requirement names).
    #[arg(long)]
    pub name: Option<String>,
}

/// `YYYY-MM-DD`, or an RFC 3339 time that starts with one.
pub fn parse_date(s: &str) -> Result<String, String> {
    bundle::config::dates::exclude_newer(s)
}

#[derive(Subcommand)]
pub enum Command {
    /// Resolve, fetch, check and write a bundle (dist/<name>/ and dist/<name>.zip).
    Build(super::build::BuildArgs),
    /// Resolve only and print the Plan; downloads no bundle files.
    Plan(super::plan::PlanArgs),
    /// Resolve and save the Plan as <name>.lock.json, for `build --locked`.
    Lock(super::lock::LockArgs),
    /// Run a bundle in the target's sandbox image: no network, the sandbox user, its checks.
    Verify(super::verify::VerifyArgs),
    /// Report what ELF files need (libraries, highest GLIBC) and whether they run on the target.
    Inspect(super::inspect::InspectArgs),
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
        command: super::cache::CacheCmd,
    },
}

#[derive(Subcommand)]
pub enum TargetCmd {
    /// Print a Python snippet to run in a sandbox; it prints that sandbox's target profile.
    Capture,
}
