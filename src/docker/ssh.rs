//! Engines over SSH, as the docker CLI reaches them: every connection is
//! one `ssh ... HOST docker system dial-stdio`, whose standard input and
//! output carry the API's HTTP. The system's `ssh` does the work, so keys,
//! agents, `~/.ssh/config` and `known_hosts` apply as they do to `docker`.
//! `BUNDLE_SSH_COMMAND` replaces `ssh` (program and options, split at
//! spaces), as `GIT_SSH_COMMAND` does for git.
//!
//! The process of a connection is killed when the connection is dropped,
//! and ends by itself when this process dies (its input closes): a
//! container's attachment ends with it, as over a local socket. The
//! connections of one client share one login ([`Master`]) when a private
//! folder for its socket exists.

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::Docker;
use hyper_util::rt::TokioIo;
use tokio::process::{ChildStdin, ChildStdout};

use super::endpoint::SshTarget;
use super::transport::{self, Connecting, Stream};

/// Why an SSH endpoint cannot be used, from ssh's exit status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshCause {
    /// The `ssh` program is not there.
    NoProgram(String),
    /// The server refused the login: no key it accepts.
    Authentication,
    /// The server's host key is unknown or changed.
    HostKey,
    /// Nothing listens there.
    Refused,
    /// The host name does not resolve.
    UnknownHost,
    /// Logged in, but `docker` is not on the remote PATH.
    NoDockerThere,
    /// Logged in, but the remote `docker` could not reach its daemon.
    RemoteDocker,
    /// Anything else ssh said.
    Other,
}

/// The outcome of logging in and asking the remote `docker` for its
/// version: what failed, and the last lines ssh or docker printed.
#[derive(Debug, Clone)]
pub struct SshFailure {
    pub cause: SshCause,
    pub said: String,
}

/// `ssh` and its options: `BUNDLE_SSH_COMMAND` or plain `ssh`.
fn ssh_program() -> Vec<String> {
    let words: Vec<String> = std::env::var("BUNDLE_SSH_COMMAND")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if words.is_empty() {
        vec!["ssh".into()]
    } else {
        words
    }
}

/// The command line that runs `remote` on `target`, never prompting.
fn command_line(target: &SshTarget, remote: &[&str]) -> Vec<String> {
    command_line_with(target, &[], remote)
}

/// [`command_line`] with more ssh options (`-o KEY=VALUE` pairs).
fn command_line_with(target: &SshTarget, options: &[String], remote: &[&str]) -> Vec<String> {
    let mut argv = ssh_program();
    argv.extend(["-o", "BatchMode=yes", "-T"].map(str::to_string));
    for o in options {
        argv.extend(["-o".to_string(), o.clone()]);
    }
    if let Some(user) = &target.user {
        argv.extend(["-l".to_string(), user.clone()]);
    }
    if let Some(port) = target.port {
        argv.extend(["-p".to_string(), port.to_string()]);
    }
    argv.extend(["--".to_string(), target.host.clone()]);
    argv.extend(remote.iter().map(|s| s.to_string()));
    argv
}

fn command(argv: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).kill_on_drop(true);
    cmd
}

/// Log in and run the remote `docker version`, so that a failure is told
/// by its cause (the transport itself only sees a closed pipe).
pub async fn check(target: &SshTarget, timeout: Duration) -> Result<(), SshFailure> {
    let argv = command_line(
        target,
        &["docker", "version", "--format", "'{{.Server.APIVersion}}'"],
    );
    let run = command(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let out = match tokio::time::timeout(timeout, run).await {
        Err(_) => {
            return Err(SshFailure {
                cause: SshCause::Other,
                said: format!("no answer within {} s", timeout.as_secs()),
            })
        }
        Ok(Err(e)) => {
            return Err(SshFailure {
                cause: SshCause::NoProgram(argv[0].clone()),
                said: e.to_string(),
            })
        }
        Ok(Ok(out)) => out,
    };
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    Err(SshFailure {
        cause: classify(out.status.code(), &stderr),
        said,
    })
}

fn classify(code: Option<i32>, stderr: &str) -> SshCause {
    let has = |s: &str| stderr.contains(s);
    if code == Some(255) {
        if has("Permission denied") || has("Too many authentication failures") {
            SshCause::Authentication
        } else if has("Host key verification failed") || has("HOST IDENTIFICATION HAS CHANGED") {
            SshCause::HostKey
        } else if has("Connection refused") {
            SshCause::Refused
        } else if has("Could not resolve hostname") || has("Name or service not known") {
            SshCause::UnknownHost
        } else {
            SshCause::Other
        }
    } else if code == Some(127) || has("command not found") || has("not found") && has("docker") {
        SshCause::NoDockerThere
    } else if has("daemon") || has("docker.sock") {
        SshCause::RemoteDocker
    } else {
        SshCause::Other
    }
}

/// A client for the engine behind `target`, one `ssh` per connection; all
/// of them share one login when a private folder for its socket is there.
pub async fn docker(target: &SshTarget, timeout: u64) -> Result<Docker, bollard::errors::Error> {
    let master = Master::start(target).await;
    let options = match &master {
        Some(m) => vec![
            "ControlMaster=no".to_string(),
            format!("ControlPath={}", m.socket.display()),
        ],
        None => Vec::new(),
    };
    let connector = Connector {
        argv: Arc::new(command_line_with(
            target,
            &options,
            &["docker", "system", "dial-stdio"],
        )),
        _master: master.map(Arc::new),
    };
    transport::client(connector, "ssh://docker.engine", timeout)
}

/// One SSH login that every connection of this client multiplexes over
/// (OpenSSH's ControlMaster): `ssh -o ControlMaster=yes ... HOST cat`,
/// whose input is a pipe from this process. When the client is dropped, or
/// this process ends however it ends, that input closes, the remote `cat`
/// ends, and the master exits once its last connection has ended, removing
/// its socket. Nothing is left behind.
struct Master {
    socket: PathBuf,
    _input: ChildStdin,
    _child: tokio::process::Child,
}

impl Master {
    /// Start one, when a private folder for its socket exists:
    /// `XDG_RUNTIME_DIR`, else `~/.ssh` (mode 0700, ours). None when there
    /// is none, or the login does not come up: each connection then logs in
    /// by itself.
    async fn start(target: &SshTarget) -> Option<Master> {
        let dir = private_dir()?;
        let socket = dir.join(format!(
            "bundle-{}-{}.sock",
            std::process::id(),
            NEXT_MASTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let argv = command_line_with(
            target,
            &[
                "ControlMaster=yes".to_string(),
                format!("ControlPath={}", socket.display()),
                "ControlPersist=no".to_string(),
            ],
            &["cat"],
        );
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let input = child.stdin.take()?;
        let until = std::time::Instant::now() + MASTER_TIMEOUT;
        while !socket.exists() {
            if child.try_wait().ok()?.is_some() || std::time::Instant::now() > until {
                tracing::debug!("no shared SSH login: each connection logs in");
                let _ = child.start_kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::debug!("shared SSH login at {}", socket.display());
        Some(Master {
            socket,
            _input: input,
            _child: child,
        })
    }
}

static NEXT_MASTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const MASTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A folder only this user can enter, for a control socket.
fn private_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let candidates = [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh")),
    ];
    let me = my_uid();
    candidates.into_iter().flatten().find(|d| {
        std::fs::symlink_metadata(d)
            .is_ok_and(|m| m.is_dir() && m.uid() == me && m.permissions().mode() & 0o077 == 0)
    })
}

/// This process's user id, as the owner of the files it creates.
fn my_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// Opens connections: starts the `ssh` process of each.
#[derive(Clone)]
struct Connector {
    argv: Arc<Vec<String>>,
    /// The shared login, kept as long as the client.
    _master: Option<Arc<Master>>,
}

type Pipe = tokio::io::Join<ChildStdout, ChildStdin>;

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = TokioIo<Stream<Pipe>>;
    type Error = io::Error;
    type Future = Connecting<Pipe>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let argv = self.argv.clone();
        Box::pin(async move {
            tracing::debug!("connecting: {}", argv.join(" "));
            let mut child = command(&argv)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(io::Error::other("ssh started without its pipes"));
            };
            Ok(Stream::new(tokio::io::join(stdout, stdin), Some(child)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_never_prompts_and_ends_options_before_the_host() {
        let t = SshTarget {
            user: Some("ci".into()),
            host: "build-host".into(),
            port: Some(2222),
        };
        let argv = command_line(&t, &["docker", "system", "dial-stdio"]);
        assert_eq!(
            argv.join(" "),
            "ssh -o BatchMode=yes -T -l ci -p 2222 -- build-host docker system dial-stdio"
        );
    }

    #[test]
    fn failures_are_told_by_their_cause() {
        assert_eq!(
            classify(Some(255), "root@127.0.0.1: Permission denied (publickey)."),
            SshCause::Authentication
        );
        assert_eq!(
            classify(
                Some(255),
                "ssh: connect to host 127.0.0.1 port 9: Connection refused"
            ),
            SshCause::Refused
        );
        assert_eq!(
            classify(Some(255), "Host key verification failed."),
            SshCause::HostKey
        );
        assert_eq!(
            classify(Some(127), "sh: 1: docker: not found"),
            SshCause::NoDockerThere
        );
        assert_eq!(
            classify(
                Some(1),
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
            ),
            SshCause::RemoteDocker
        );
    }
}
