//! Opening a client to the engine an [`Endpoint`] names, and telling why it
//! could not be reached: nothing listening, a certificate the CA does not
//! vouch for, a client certificate the engine refuses, an SSH login that
//! fails.

use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

use super::endpoint::{Endpoint, Transport};
use super::ssh::{self, SshCause, SshFailure};
use super::tls;
use super::DockerError;

/// Seconds any one API request may take (image commits and big copies
/// included).
const REQUEST_TIMEOUT_S: u64 = 600;
/// How long the engine has to answer the first request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an SSH login may take.
const SSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an engine could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreached {
    /// No socket there, or the connection was refused.
    NotListening,
    /// The engine's certificate is not signed by the CA in `ca.pem`, or
    /// does not name the host.
    TlsUntrusted(String),
    /// The engine refused this client's certificate.
    TlsRejected(String),
    /// The SSH login, or the remote `docker`, failed.
    Ssh(SshCause, String),
    /// No answer within these seconds.
    TimedOut(u64),
    /// Anything else (the error's source says what).
    Failed,
}

impl Unreached {
    /// What the engine did, after "the engine at ENDPOINT".
    pub fn text(&self) -> String {
        let said = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!(": {s}")
            }
        };
        match self {
            Unreached::NotListening => "does not answer: nothing listens there".into(),
            Unreached::TlsUntrusted(d) => format!(
                "presented a certificate that failed TLS verification against the CA in ca.pem{}",
                said(d)
            ),
            Unreached::TlsRejected(d) => {
                format!("refused this client's TLS certificate{}", said(d))
            }
            Unreached::Ssh(cause, s) => match cause {
                SshCause::NoProgram(p) => format!("needs `{p}`, which did not start{}", said(s)),
                SshCause::Authentication => {
                    format!("refused the SSH login (authentication failed){}", said(s))
                }
                SshCause::HostKey => {
                    format!("has an SSH host key that is not trusted here{}", said(s))
                }
                SshCause::Refused => format!("refused the SSH connection{}", said(s)),
                SshCause::UnknownHost => format!("names a host that does not resolve{}", said(s)),
                SshCause::NoDockerThere => {
                    format!("has no `docker` command on its PATH{}", said(s))
                }
                SshCause::RemoteDocker => {
                    format!(
                        "logged in, but its docker could not reach a daemon{}",
                        said(s)
                    )
                }
                SshCause::Other => format!("could not be reached over SSH{}", said(s)),
            },
            Unreached::TimedOut(s) => format!("did not answer within {s} s"),
            Unreached::Failed => "could not be reached".into(),
        }
    }

    /// What to do about it.
    pub fn hint(&self, endpoint: &Endpoint) -> String {
        let certs = match &endpoint.transport {
            Transport::Tls { certs, .. } => Some(certs),
            _ => None,
        };
        match (self, &endpoint.transport) {
            (Unreached::NotListening | Unreached::Failed, Transport::Unix(_)) => {
                "install Docker (e.g. `apt-get install docker.io`) and start `dockerd`, or point DOCKER_HOST (or DOCKER_CONTEXT) at an engine; PyPI-only and release-only recipes do not need it".into()
            }
            (Unreached::NotListening, _) => format!(
                "check that the engine listens on {} and that nothing in between drops the connection",
                endpoint.url
            ),
            (Unreached::TlsUntrusted(_), _) => format!(
                "the engine's certificate must be signed by the CA in {} and name the host you connect to: copy the engine's CA there (DOCKER_CERT_PATH, or the context's TLS files)",
                certs.map(|c| c.ca.display().to_string()).unwrap_or_else(|| "ca.pem".into())
            ),
            (Unreached::TlsRejected(_), _) => format!(
                "{} and {} must be a client certificate and key signed by the CA the engine trusts (dockerd --tlscacert)",
                certs.map(|c| c.cert.display().to_string()).unwrap_or_else(|| "cert.pem".into()),
                certs.map(|c| c.key.display().to_string()).unwrap_or_else(|| "key.pem".into()),
            ),
            (Unreached::Ssh(cause, _), Transport::Ssh(t)) => {
                let login = t.login();
                let ssh = t.ssh_command();
                match cause {
                    SshCause::Authentication => format!(
                        "`{ssh} docker version` must work without a prompt: load the key into ssh-agent or name it in ~/.ssh/config (or set BUNDLE_SSH_COMMAND=\"ssh -i KEY\")"
                    ),
                    SshCause::HostKey => format!(
                        "log in once with `{ssh}` to check and accept the host key, or add it to known_hosts"
                    ),
                    SshCause::NoProgram(_) => "install the OpenSSH client (`apt-get install openssh-client`), or set BUNDLE_SSH_COMMAND".into(),
                    SshCause::NoDockerThere => format!("install the docker CLI on {}, as `docker -H ssh://` needs too", t.host),
                    SshCause::RemoteDocker => format!("start dockerd on {}, and let {login} use it (the docker group)", t.host),
                    _ => format!("`{ssh} docker version` shows what fails"),
                }
            }
            _ => format!(
                "check the engine at {} with `docker -H {} version`",
                endpoint.url,
                crate::model::sh_quote(&endpoint.url)
            ),
        }
    }
}

/// A client for `endpoint` that has agreed on an API version with it.
pub async fn open(endpoint: &Endpoint, needs: &str) -> Result<Docker, DockerError> {
    let fail =
        |cause: Unreached, source: Option<bollard::errors::Error>| DockerError::Unreachable {
            needs: needs.to_string(),
            endpoint: Box::new(endpoint.clone()),
            cause: Box::new(cause),
            source,
        };
    let client = match &endpoint.transport {
        Transport::Unix(path) => Docker::connect_with_unix(
            &format!("unix://{}", path.display()),
            REQUEST_TIMEOUT_S,
            API_DEFAULT_VERSION,
        ),
        Transport::Tcp { address } => Docker::connect_with_http(
            &format!("tcp://{address}"),
            REQUEST_TIMEOUT_S,
            API_DEFAULT_VERSION,
        ),
        Transport::Tls { address, certs } => {
            tls::docker(address, certs, &endpoint.from, REQUEST_TIMEOUT_S)?
        }
        Transport::Ssh(target) => {
            if let Err(SshFailure { cause, said }) = ssh::check(target, SSH_TIMEOUT).await {
                return Err(fail(Unreached::Ssh(cause, said), None));
            }
            ssh::docker(target, REQUEST_TIMEOUT_S).await
        }
    };
    let client = client.map_err(|e| fail(classify(&e), Some(e)))?;
    // Over SSH the first request also logs in again.
    let wait = match endpoint.transport {
        Transport::Ssh(_) => SSH_TIMEOUT,
        _ => ANSWER_TIMEOUT,
    };
    match tokio::time::timeout(wait, client.negotiate_version()).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => {
            let mut cause = classify(&e);
            if let (Unreached::Failed, Transport::Tls { address, certs }) =
                (&cause, &endpoint.transport)
            {
                // The pooled connection may have lost what the engine said.
                if let Some(said) = tls::probe(address, certs, &endpoint.from).await {
                    cause = classify_text(&said);
                }
            }
            Err(fail(cause, Some(e)))
        }
        Err(_) => Err(fail(Unreached::TimedOut(wait.as_secs()), None)),
    }
}

/// The cause of a failed first request, from the error and its sources.
fn classify(e: &bollard::errors::Error) -> Unreached {
    if matches!(e, bollard::errors::Error::SocketNotFoundError(_)) {
        return Unreached::NotListening;
    }
    if matches!(e, bollard::errors::Error::RequestTimeoutError) {
        return Unreached::TimedOut(REQUEST_TIMEOUT_S);
    }
    let mut chain = format!("{e:?}");
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        chain.push('\n');
        chain.push_str(&s.to_string());
        source = s.source();
    }
    classify_text(&chain)
}

/// The cause a failure's text (its error chain) names.
fn classify_text(chain: &str) -> Unreached {
    let detail = |marker: &str| -> String {
        chain
            .lines()
            .find(|l| l.contains(marker))
            .map(|l| l.trim().to_string())
            .unwrap_or_default()
    };
    if chain.contains("invalid peer certificate") {
        Unreached::TlsUntrusted(detail("invalid peer certificate"))
    } else if chain.contains("received fatal alert") {
        Unreached::TlsRejected(detail("received fatal alert"))
    } else if chain.contains("Connection refused") || chain.contains("ConnectionRefused") {
        Unreached::NotListening
    } else {
        Unreached::Failed
    }
}
