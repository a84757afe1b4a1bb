//! `bundle lock`: resolve and save the Plan as `<name>.lock.json`.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use bundle::Error;

use super::plan::resolve_plan;
use crate::ResolveArgs;

#[derive(Args)]
pub struct LockArgs {
    #[command(flatten)]
    resolve: ResolveArgs,
    /// Where to write the lock file (default: ./<name>.lock.json).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub async fn run(args: LockArgs, quiet: bool, cancel: CancellationToken) -> Result<(), Error> {
    let LockArgs { resolve, output } = args;
    let (plan, _) = resolve_plan(&resolve, quiet, cancel).await?;
    let path = output.unwrap_or_else(|| PathBuf::from(format!("{}.lock.json", plan.name)));
    let mut text = serde_json::to_string_pretty(&plan).expect("serializable");
    text.push('\n');
    bundle::fsutil::write_atomic(&path, text.as_bytes()).map_err(|source| Error::Io {
        action: "writing the lock file",
        path: path.clone(),
        source,
    })?;
    if !quiet {
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
