//! Phase 4, check: every ELF file staged, against the target.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::assemble::{FileEntry, FileKind};
use crate::check;
use crate::config::target::Target;
use crate::fetch::Fetcher;
use crate::report::Reporter;
use crate::Error;

/// Check every ELF file, including shared objects inside wheels; record
/// what binaries need in their entries. Returns the warnings; an
/// incompatible file is an error.
pub(super) fn check_staged(
    root: &Path,
    target: &Target,
    system_libs: &BTreeSet<String>,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
    entries: &mut BTreeMap<String, FileEntry>,
) -> Result<Vec<String>, Error> {
    let wheel_hashes: BTreeMap<String, crate::model::Sha256> = entries
        .values()
        .filter(|e| e.kind == FileKind::Wheel)
        .map(|e| (e.path.clone(), e.sha256.clone()))
        .collect();
    let infos = check::scan_dir(root, Some((&wheel_hashes, fetcher.cache())))?;
    let verdicts = check::judge_all(target, infos, system_libs);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for v in &verdicts {
        errors.extend(v.errors.iter().cloned());
        for w in &v.warnings {
            reporter.warn(w);
            warnings.push(w.clone());
        }
        if !v.missing.is_empty() {
            let w = format!(
                "{} needs {} which target {} may lack and the bundle does not carry",
                v.elf.path,
                v.missing.join(", "),
                target.name
            );
            reporter.warn(&w);
            warnings.push(w);
        }
        if let Some(e) = entries.get_mut(&v.elf.path) {
            if matches!(e.kind, FileKind::Binary | FileKind::Library) {
                e.glibc = v.elf.glibc.clone();
                e.needed = Some(v.elf.needed.clone());
            }
        }
    }
    if !errors.is_empty() {
        return Err(check::CheckError::Incompatible {
            target: target.name.clone(),
            count: errors.len(),
            details: errors.join("\n"),
        }
        .into());
    }
    Ok(warnings)
}
