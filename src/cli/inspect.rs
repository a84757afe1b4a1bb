//! `bundle inspect`: what ELF files need, and whether they run on a target.

use std::path::PathBuf;

use clap::Args;

use bundle::check;
use bundle::config::target::{self, Target};
use bundle::Error;

use super::{outln, print_json};

#[derive(Args)]
pub struct InspectArgs {
    /// A file, folder, wheel or zip.
    path: PathBuf,
    /// Target profile to judge against: a built-in name or a .toml file [default: ubuntu-20.04].
    #[arg(long, short = 't', value_name = "NAME|FILE")]
    target: Option<String>,
    /// Print the files and verdicts as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> Result<(), Error> {
    let InspectArgs { path, target, json } = args;
    let target = Target::load(target.as_deref().unwrap_or(target::DEFAULT_TARGET))?;
    if !path.exists() {
        return Err(Error::Usage(format!(
            "{} does not exist: name a file, folder, wheel, archive or volume (NAME.zip.001)",
            path.display()
        )));
    }
    // A volume (`x.zip.001`) is read with the others, as the archive they
    // join into, as `verify` reads it.
    let joined = tempfile::tempdir().map_err(|e| Error::Usage(e.to_string()))?;
    let scanned = match bundle::assemble::volumes_of(&path) {
        Some(volumes) if !volumes.is_empty() => {
            bundle::assemble::join_volumes(&volumes, joined.path()).map_err(|e| {
                Error::Usage(format!("joining the volumes of {}: {e}", path.display()))
            })?
        }
        _ => path.clone(),
    };
    let infos = check::scan(&scanned)?;
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
