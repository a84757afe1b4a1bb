//! The `bundle` command line: dispatch. The arguments are in `cli/args.rs`,
//! each command is a file in `cli/`; all the work is in the library.

mod cli;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use bundle::{Diagnose, Error};
use cli::args::{Cli, Command, TargetCmd};
use cli::process::{fewer_malloc_arenas, init_logging, interrupted, report_peak_memory};

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
