//! Step 1: the upload, as a user does it: the files land in the upload
//! folder, owned by the sandbox user.

use std::path::PathBuf;
use std::time::Instant;

use crate::config::target::Target;
use crate::docker::{ExecOptions, Run};
use crate::report::{Reporter, Step as Progress};

use super::bundle::Bundle;
use super::{Step, VerifyError};

/// Step 1. Upload, as a user does: the files land in the upload folder, owned
/// by the sandbox user.
pub(super) async fn upload(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    reporter: &dyn Reporter,
) -> Result<Step, VerifyError> {
    let up = target.upload_dir.trim_end_matches('/').to_string();
    let started = Instant::now();
    let names: Vec<String> = bundle
        .uploads
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| !n.contains('/'))
        .collect();
    let _step = Progress::start(reporter, "uploading");
    let ids = c
        .run_ok("id -u; id -g", "id", &ExecOptions::default())
        .await?;
    let mut nums = ids
        .stdout
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    let owner = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    // The tar is written to disk and streamed: uploads may be gigabytes.
    let tar = upload_tar(&bundle.uploads, owner).map_err(|e| VerifyError::NotABundle {
        path: bundle.dir.clone(),
        message: e.to_string(),
    })?;
    c.copy_in_file(&up, tar.path()).await?;
    Ok(Step {
        name: "upload".into(),
        ok: true,
        seconds: started.elapsed().as_secs_f64(),
        command: None,
        output: if names.is_empty() {
            format!("{}/ into {up}", bundle.name)
        } else {
            format!("{} into {up}", names.join(", "))
        },
        items: Vec::new(),
    })
}

/// A tar of the uploads in a temporary file (uploads may be gigabytes),
/// owned by `owner`, mode 0644, with their folders.
fn upload_tar(
    uploads: &[(String, PathBuf)],
    owner: (u64, u64),
) -> std::io::Result<tempfile::NamedTempFile> {
    let file = tempfile::NamedTempFile::new()?;
    let mut members = Vec::new();
    for (path, from) in uploads {
        members.push((path.as_str(), 0o644, std::fs::metadata(from)?.len()));
    }
    let out = crate::docker::write_tar(
        std::io::BufWriter::new(file.reopen()?),
        &members,
        owner,
        |i| std::fs::File::open(&uploads[i].1).map(std::io::BufReader::new),
    )?;
    std::io::Write::flush(&mut { out })?;
    Ok(file)
}
