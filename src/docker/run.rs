//! What the stages need of a running container, as a trait (unit tests
//! script a fake), and the small helpers that go with it.

use std::future::Future;
use std::time::Duration;

use super::error::DockerError;

/// The output of a command run in a container.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl ExecOutput {
    /// Standard output then standard error, trimmed, for messages.
    pub fn combined(&self) -> String {
        let mut s = self.stdout.trim_end().to_string();
        let e = self.stderr.trim_end();
        if !e.is_empty() {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(e);
        }
        s
    }
}

/// How to run one command.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub env: Vec<String>,
    /// Enforced inside the container with coreutils `timeout`.
    pub timeout: Option<Duration>,
}

/// Files copied out of a container: each one's path in the archive, and
/// its bytes when it is a regular file.
pub type Members = Vec<(String, Option<Vec<u8>>)>;

/// What the stages need of a running container: run a command, copy files
/// in and out. [`Container`] is the real one; unit tests script a fake, so
/// that apt's and verify's steps are tested without a daemon.
pub trait Run: Sync {
    /// The image it runs, for messages.
    fn image(&self) -> &str;

    /// Run `script` with `sh -c` and collect its output.
    fn exec(
        &self,
        script: &str,
        options: &ExecOptions,
    ) -> impl Future<Output = Result<ExecOutput, DockerError>> + Send;

    /// The members of `path` (a file or a folder), copied out: each one's
    /// path in the archive, and its bytes when it is a regular file.
    fn copy_out_members(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Members, DockerError>> + Send;

    /// Unpack the tar archive `tar` into folder `dir`.
    fn copy_in(
        &self,
        dir: &str,
        tar: Vec<u8>,
    ) -> impl Future<Output = Result<(), DockerError>> + Send;

    /// Unpack the tar archive at `tar` (on the host) into `dir`, streamed.
    fn copy_in_file(
        &self,
        dir: &str,
        tar: &std::path::Path,
    ) -> impl Future<Output = Result<(), DockerError>> + Send;

    /// Run `script`; a non-zero exit is an error naming `what` with the output.
    fn run_ok(
        &self,
        script: &str,
        what: &str,
        options: &ExecOptions,
    ) -> impl Future<Output = Result<ExecOutput, DockerError>> + Send {
        async move {
            let out = self.exec(script, options).await?;
            if out.timed_out {
                return Err(DockerError::TimedOut {
                    what: what.to_string(),
                    image: self.image().to_string(),
                    seconds: options.timeout.map(|t| t.as_secs()).unwrap_or(0),
                });
            }
            if out.code != 0 {
                return Err(DockerError::Failed {
                    what: what.to_string(),
                    image: self.image().to_string(),
                    code: out.code,
                    output: tail(&out.combined(), 40),
                });
            }
            Ok(out)
        }
    }

    /// The bytes of one regular file.
    fn read_file(&self, path: &str) -> impl Future<Output = Result<Vec<u8>, DockerError>> + Send {
        async move {
            let bad = |message: &str| DockerError::Archive {
                path: path.to_string(),
                message: message.to_string(),
            };
            match self.copy_out_members(path).await?.into_iter().next() {
                Some((_, Some(data))) => Ok(data),
                Some((_, None)) => Err(bad("not a regular file")),
                None => Err(bad("empty archive")),
            }
        }
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines]\n"));
    }
    out.push_str(&lines[start..].join("\n"));
    out
}

pub use crate::model::sh_quote;

/// A tar archive holding `files` (path → (mode, bytes)), for [`Container::copy_in`].
pub fn tar_of(files: &[(String, u32, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let members: Vec<(&str, u32, u64)> = files
        .iter()
        .map(|(path, mode, data)| (path.as_str(), *mode, data.len() as u64))
        .collect();
    write_tar(Vec::new(), &members, (0, 0), |i| Ok(files[i].2.as_slice()))
}

/// Write a tar for the archive endpoint into `out`: each member (path,
/// mode, size), its bytes read from `open(index)` when it is written (one
/// open file at a time), owned by `(uid, gid)`, after the folders that
/// hold them, owned alike (else the daemon makes them root's).
pub fn write_tar<W: std::io::Write, R: std::io::Read>(
    out: W,
    members: &[(&str, u32, u64)],
    owner: (u64, u64),
    mut open: impl FnMut(usize) -> std::io::Result<R>,
) -> std::io::Result<W> {
    let mut b = tar::Builder::new(out);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h
    };
    let mut dirs = std::collections::BTreeSet::new();
    for (path, ..) in members {
        let mut p = std::path::Path::new(path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    for d in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())?;
    }
    for (i, (path, mode, size)) in members.iter().enumerate() {
        let mut h = header(tar::EntryType::Regular, *mode, *size);
        b.append_data(&mut h, path, open(i)?)?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("lua5.3"), "lua5.3");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\nb\nc", 2), "[... 1 earlier lines]\nb\nc");
        assert_eq!(tail("a", 2), "a");
    }
}
