//! Which Docker engine to use, and how to reach it, as the docker CLI
//! decides it:
//! 1. `DOCKER_HOST`, when set: `unix://PATH`, `tcp://HOST[:PORT]` (TLS
//!    when `DOCKER_TLS_VERIFY` is set, with `ca.pem`, `cert.pem` and
//!    `key.pem` from `DOCKER_CERT_PATH`, else the docker config folder), or
//!    `ssh://[USER@]HOST[:PORT]`;
//! 2. else the context named by `DOCKER_CONTEXT`, else the `currentContext`
//!    of `config.json`, read from the docker CLI's context store;
//! 3. else the local socket, `/var/run/docker.sock`.
//!
//! The docker config folder is `DOCKER_CONFIG`, else `~/.docker`.

use std::path::{Path, PathBuf};

use crate::error::{Diagnose, BAD_INPUT};
use crate::fetch::cache::sha256_hex;

/// The local socket, when nothing names another engine.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How to reach an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A Unix socket.
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Tcp { address: String },
    /// HTTPS to `host:port`, verifying the engine's certificate against
    /// `ca` and presenting `cert`/`key` when they exist.
    Tls { address: String, certs: CertFiles },
    /// `ssh [-l user] [-p port] host docker system dial-stdio`.
    Ssh(SshTarget),
}

/// The TLS files of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    fn in_folder(dir: &Path) -> CertFiles {
        CertFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// The remote end of an `ssh://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    /// `user@host`, or `host`: for messages.
    pub fn login(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The `ssh` command line that reaches it, quoted for the shell (for
    /// hints a user may paste): `ssh -p 2222 ci@build-host`.
    pub fn ssh_command(&self) -> String {
        let port = self.port.map(|p| format!("-p {p} ")).unwrap_or_default();
        format!("ssh {port}{}", crate::model::sh_quote(&self.login()))
    }
}

/// The engine to use: its address, how to reach it, and what named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As written: `unix:///var/run/docker.sock`, `tcp://10.0.0.5:2376`...
    pub url: String,
    pub transport: Transport,
    /// `DOCKER_HOST`, `docker context "x"`, or `the default socket`.
    pub from: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = if matches!(self.transport, Transport::Tls { .. }) {
            ", TLS"
        } else {
            ""
        };
        write!(f, "{} (from {}{tls})", self.url, self.from)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{from}: `{url}` is not a Docker endpoint this tool can use ({why})")]
    BadUrl {
        from: String,
        url: String,
        why: String,
    },
    #[error("{from} asks for TLS without verifying the engine's certificate")]
    Unverified { from: String },
    #[error("{from}: TLS needs the engine's CA certificate, and {path} does not exist")]
    NoCa { from: String, path: PathBuf },
    #[error("docker context \"{name}\" is not in the context store {store}")]
    UnknownContext { name: String, store: PathBuf },
    #[error("reading docker context \"{name}\" from {path}")]
    ContextRead {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("docker context \"{name}\" ({path}) is not valid: {message}")]
    ContextInvalid {
        name: String,
        path: PathBuf,
        message: String,
    },
    #[error("{from}: the TLS file {path} cannot be used: {message}")]
    TlsFile {
        from: String,
        path: PathBuf,
        message: String,
    },
    #[error("reading the docker CLI's configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
}

impl Diagnose for EndpointError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            EndpointError::BadUrl { .. } => {
                "use unix:///PATH, tcp://HOST:PORT (with DOCKER_TLS_VERIFY=1 for TLS) or ssh://USER@HOST[:PORT]".into()
            }
            EndpointError::Unverified { .. } => {
                "bundle always verifies the engine: set DOCKER_TLS_VERIFY=1 and put the engine's ca.pem (and this client's cert.pem and key.pem) in DOCKER_CERT_PATH".into()
            }
            EndpointError::NoCa { .. } => {
                "set DOCKER_CERT_PATH to the folder with ca.pem, cert.pem and key.pem (the default is ~/.docker)".into()
            }
            EndpointError::UnknownContext { .. } => {
                "`docker context ls` lists the contexts; unset DOCKER_CONTEXT, or set DOCKER_HOST, to use another engine".into()
            }
            EndpointError::ContextRead { .. } | EndpointError::ContextInvalid { .. } => {
                "`docker context inspect NAME` shows what the docker CLI reads there".into()
            }
            EndpointError::TlsFile { .. } => {
                "ca.pem, cert.pem and key.pem must be PEM files: the engine's CA, and this client's certificate and key".into()
            }
            EndpointError::Config { .. } => {
                "fix the file, or set DOCKER_HOST to name the engine directly".into()
            }
        })
    }

    fn exit_code(&self) -> i32 {
        BAD_INPUT
    }
}

/// The endpoint the environment names (see the module's documentation).
/// `env` reads a variable, `None` when unset or empty.
pub fn resolve(env: &dyn Fn(&str) -> Option<String>) -> Result<Endpoint, EndpointError> {
    let config_dir = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".docker")));
    if let Some(host) = env("DOCKER_HOST") {
        let certs = env("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .or_else(|| config_dir.clone())
            .map(|d| CertFiles::in_folder(&d));
        let tls = match (env("DOCKER_TLS_VERIFY"), env("DOCKER_TLS")) {
            (Some(_), _) => Tls::Verify(certs),
            (None, Some(_)) => Tls::Unverified,
            // `https://` means TLS, verified, whatever the variables say.
            (None, None) if host.starts_with("https://") => Tls::Verify(certs),
            (None, None) => Tls::Off,
        };
        return parse(&host, tls, "DOCKER_HOST");
    }
    let Some(dir) = config_dir else {
        return parse(
            &format!("unix://{DEFAULT_SOCKET}"),
            Tls::Off,
            "the default socket",
        );
    };
    let name = match env("DOCKER_CONTEXT") {
        Some(n) => Some(n),
        None => current_context(&dir.join("config.json"))?,
    };
    match name {
        Some(name) if name != "default" => from_context(&dir, &name),
        _ => parse(
            &format!("unix://{DEFAULT_SOCKET}"),
            Tls::Off,
            "the default socket",
        ),
    }
}

/// Whether (and with what) to speak TLS to a `tcp://` endpoint.
enum Tls {
    Off,
    Unverified,
    Verify(Option<CertFiles>),
}

fn parse(url: &str, tls: Tls, from: &str) -> Result<Endpoint, EndpointError> {
    let bad = |why: &str| EndpointError::BadUrl {
        from: from.to_string(),
        url: url.to_string(),
        why: why.to_string(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let transport = match scheme {
        "unix" => {
            if rest.is_empty() {
                return Err(bad("no socket path"));
            }
            Transport::Unix(PathBuf::from(rest))
        }
        "tcp" | "http" | "https" => {
            // `http://` is never TLS; `https://` always is.
            let tls = match (scheme, tls) {
                ("http", _) => Tls::Off,
                ("https", Tls::Off) => Tls::Verify(None),
                (_, tls) => tls,
            };
            let address =
                host_port(rest, !matches!(tls, Tls::Off)).ok_or_else(|| bad("no host"))?;
            match tls {
                Tls::Off => Transport::Tcp { address },
                Tls::Unverified => {
                    return Err(EndpointError::Unverified {
                        from: from.to_string(),
                    })
                }
                Tls::Verify(certs) => {
                    let certs =
                        certs.ok_or_else(|| bad("no folder for ca.pem: set DOCKER_CERT_PATH"))?;
                    if !certs.ca.is_file() {
                        return Err(EndpointError::NoCa {
                            from: from.to_string(),
                            path: certs.ca,
                        });
                    }
                    Transport::Tls { address, certs }
                }
            }
        }
        "ssh" => Transport::Ssh(
            ssh_target(rest).ok_or_else(|| bad("expected ssh://[USER@]HOST[:PORT]"))?,
        ),
        _ => return Err(bad("unknown scheme")),
    };
    Ok(Endpoint {
        url: url.to_string(),
        transport,
        from: from.to_string(),
    })
}

/// `host:port` of a `tcp://` address, with Docker's default port (2376 for
/// TLS, 2375 without) when none is given. The host and port are checked as
/// an ssh:// one's are.
fn host_port(rest: &str, tls: bool) -> Option<String> {
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Some(format!(
        "{host}:{}",
        port.unwrap_or(if tls { 2376 } else { 2375 })
    ))
}

/// A host and an optional port, checked before any process or connection
/// sees them: an IP address (IPv6 in brackets), or a name of letters,
/// digits, `-`, `.` and `_` (a DNS name, or an ssh-config alias) that does
/// not start with `-` or `.`; a port from 1 to 65535. Anything else (a
/// space, `;`, an option such as `-oProxyCommand=...`) is not an address.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let port_of = |p: &str| -> Option<u16> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse::<u16>().ok().filter(|p| *p != 0)
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(port_of(p.strip_prefix(':')?)?),
        };
        return Some((h.to_string(), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(port_of(p)?)),
        None => (authority, None),
    };
    valid_name(host).then(|| (host.to_string(), port))
}

/// A host name or user name that is safe to hand to ssh as one word.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

fn ssh_target(rest: &str) -> Option<SshTarget> {
    let authority = rest.split('/').next().unwrap_or_default();
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) if valid_name(u) => (Some(u.to_string()), h),
        Some(_) => return None,
        None => (None, authority),
    };
    let (host, port) = split_host_port(hostport)?;
    Some(SshTarget { user, host, port })
}

/// `currentContext` of the docker CLI's `config.json`, if any.
fn current_context(path: &Path) -> Result<Option<String>, EndpointError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EndpointError::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
    };
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EndpointError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(config
        .get("currentContext")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_string))
}

/// The docker endpoint of context `name`, from the context store under
/// `dir`: `contexts/meta/<sha256 of name>/meta.json`, and its TLS files in
/// `contexts/tls/<sha256 of name>/docker/`.
fn from_context(dir: &Path, name: &str) -> Result<Endpoint, EndpointError> {
    let id = sha256_hex(name.as_bytes());
    let meta = dir.join("contexts/meta").join(&id).join("meta.json");
    let text = match std::fs::read_to_string(&meta) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EndpointError::UnknownContext {
                name: name.to_string(),
                store: dir.join("contexts"),
            })
        }
        Err(source) => {
            return Err(EndpointError::ContextRead {
                name: name.to_string(),
                path: meta,
                source,
            })
        }
    };
    let invalid = |message: &str| EndpointError::ContextInvalid {
        name: name.to_string(),
        path: meta.clone(),
        message: message.to_string(),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(&e.to_string()))?;
    let docker = &value["Endpoints"]["docker"];
    let host = docker["Host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("it has no docker endpoint (Endpoints.docker.Host)"))?;
    let tls_dir = dir.join("contexts/tls").join(&id).join("docker");
    let from = format!("docker context \"{name}\"");
    let tls = if docker["SkipTLSVerify"].as_bool() == Some(true) {
        Tls::Unverified
    } else if tls_dir.join("ca.pem").is_file() {
        Tls::Verify(Some(CertFiles::in_folder(&tls_dir)))
    } else {
        Tls::Off
    };
    let tls = match (host.split_once("://").map(|(s, _)| s), tls) {
        // TLS settings only matter to tcp endpoints.
        (Some("tcp" | "https"), tls) => tls,
        _ => Tls::Off,
    };
    parse(host, tls, &from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Endpoint, EndpointError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(&|k| map.get(k).filter(|v| !v.is_empty()).cloned())
    }

    fn context(dir: &Path, name: &str, host: &str, skip: bool, tls: bool) {
        let id = sha256_hex(name.as_bytes());
        let meta = dir.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        let json = serde_json::json!({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}}});
        std::fs::write(meta.join("meta.json"), json.to_string()).unwrap();
        if tls {
            let t = dir.join("contexts/tls").join(&id).join("docker");
            std::fs::create_dir_all(&t).unwrap();
            for f in ["ca.pem", "cert.pem", "key.pem"] {
                std::fs::write(t.join(f), "x").unwrap();
            }
        }
    }

    #[test]
    fn nothing_set_is_the_local_socket() {
        let e = with(&[]).unwrap();
        assert_eq!(e.transport, Transport::Unix(DEFAULT_SOCKET.into()));
        assert_eq!(e.from, "the default socket");
    }

    #[test]
    fn docker_host_schemes() {
        let e = with(&[("DOCKER_HOST", "unix:///run/user/1/docker.sock")]).unwrap();
        assert_eq!(
            e.transport,
            Transport::Unix("/run/user/1/docker.sock".into())
        );
        let e = with(&[("DOCKER_HOST", "tcp://10.0.0.5")]).unwrap();
        assert_eq!(
            e.transport,
            Transport::Tcp {
                address: "10.0.0.5:2375".into()
            }
        );
        let e = with(&[("DOCKER_HOST", "ssh://ci@build-host:2222")]).unwrap();
        assert_eq!(
            e.transport,
            Transport::Ssh(SshTarget {
                user: Some("ci".into()),
                host: "build-host".into(),
                port: Some(2222)
            })
        );
        let e = with(&[("DOCKER_HOST", "ssh://build-host")]).unwrap();
        assert_eq!(
            e.transport,
            Transport::Ssh(SshTarget {
                user: None,
                host: "build-host".into(),
                port: None
            })
        );
        for bad in [
            "ssh://-oProxyCommand=x",
            "ssh://",
            "npipe:////./pipe/docker",
            "10.0.0.5:2375",
            "tcp://",
            "ssh://h:notaport",
            // Hostile or malformed addresses never reach ssh or a socket.
            "ssh://;touch x",
            "ssh://a b",
            "ssh://host -oProxyCommand=id",
            "ssh://host:0",
            "ssh://host:99999",
            "ssh://-user@host",
            "ssh://us;er@host",
            "ssh://[::1",
            "tcp://[::1",
            "tcp://[::1]:99999",
            "tcp://host:0",
            "tcp://a b:2375",
            "tcp://[nothex]:2375",
        ] {
            let err = with(&[("DOCKER_HOST", bad)]).unwrap_err();
            assert!(matches!(err, EndpointError::BadUrl { .. }), "{bad}: {err}");
            assert_eq!(err.exit_code(), BAD_INPUT);
        }
        // IPv6 literals, aliases with `_`, and the ends of the port range.
        let e = with(&[("DOCKER_HOST", "tcp://[::1]:2375")]).unwrap();
        assert_eq!(
            e.transport,
            Transport::Tcp {
                address: "[::1]:2375".into()
            }
        );
        let e = with(&[("DOCKER_HOST", "ssh://me@[::1]:65535")]).unwrap();
        assert_eq!(
            e.transport,
            Transport::Ssh(SshTarget {
                user: Some("me".into()),
                host: "::1".into(),
                port: Some(65535)
            })
        );
        let Transport::Ssh(t) = with(&[("DOCKER_HOST", "ssh://ci@build-host:2222")])
            .unwrap()
            .transport
        else {
            panic!("ssh")
        };
        assert_eq!(t.ssh_command(), "ssh -p 2222 ci@build-host");
        let e = with(&[("DOCKER_HOST", "ssh://build_box.internal:1")]).unwrap();
        assert!(matches!(
            e.transport,
            Transport::Ssh(SshTarget { port: Some(1), .. })
        ));
    }

    #[test]
    fn tls_follows_docker_tls_verify_and_the_cert_path() {
        let certs = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let cert_path = certs.path().to_str().unwrap();
        // No ca.pem: named.
        let err = with(&[
            ("DOCKER_HOST", "tcp://h"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", cert_path),
        ])
        .unwrap_err();
        assert!(
            matches!(err, EndpointError::NoCa { ref path, .. } if path == &certs.path().join("ca.pem")),
            "{err}"
        );
        std::fs::write(certs.path().join("ca.pem"), "x").unwrap();
        let e = with(&[
            ("DOCKER_HOST", "tcp://h"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", cert_path),
        ])
        .unwrap();
        assert_eq!(
            e.transport,
            Transport::Tls {
                address: "h:2376".into(),
                certs: CertFiles::in_folder(certs.path())
            }
        );
        assert_eq!(e.to_string(), "tcp://h (from DOCKER_HOST, TLS)");
        // Without DOCKER_CERT_PATH, ~/.docker.
        std::fs::create_dir_all(home.path().join(".docker")).unwrap();
        std::fs::write(home.path().join(".docker/ca.pem"), "x").unwrap();
        let e = with(&[
            ("DOCKER_HOST", "tcp://h:1234"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("HOME", home.path().to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(
            e.transport,
            Transport::Tls {
                address: "h:1234".into(),
                certs: CertFiles::in_folder(&home.path().join(".docker"))
            }
        );
        // https:// is TLS without DOCKER_TLS_VERIFY too.
        let e = with(&[
            ("DOCKER_HOST", "https://h"),
            ("DOCKER_CERT_PATH", cert_path),
        ])
        .unwrap();
        assert!(
            matches!(e.transport, Transport::Tls { ref address, .. } if address == "h:2376"),
            "{e:?}"
        );
        // TLS without verification is refused.
        let err = with(&[("DOCKER_HOST", "tcp://h"), ("DOCKER_TLS", "1")]).unwrap_err();
        assert!(matches!(err, EndpointError::Unverified { .. }), "{err}");
    }

    #[test]
    fn contexts_come_from_the_store_and_docker_host_wins() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        context(dir.path(), "remote", "tcp://10.1.1.1:2376", false, true);
        context(dir.path(), "over-ssh", "ssh://me@box", false, false);
        context(dir.path(), "insecure", "tcp://10.1.1.2:2376", true, true);
        let e = with(&[("DOCKER_CONFIG", d), ("DOCKER_CONTEXT", "remote")]).unwrap();
        let tls = dir
            .path()
            .join("contexts/tls")
            .join(sha256_hex(b"remote"))
            .join("docker");
        assert_eq!(
            e.transport,
            Transport::Tls {
                address: "10.1.1.1:2376".into(),
                certs: CertFiles::in_folder(&tls)
            }
        );
        assert_eq!(e.from, "docker context \"remote\"");
        // currentContext in config.json, when DOCKER_CONTEXT is unset.
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths": {}, "currentContext": "over-ssh"}"#,
        )
        .unwrap();
        let e = with(&[("DOCKER_CONFIG", d)]).unwrap();
        assert!(
            matches!(e.transport, Transport::Ssh(ref t) if t.login() == "me@box"),
            "{e:?}"
        );
        // DOCKER_CONTEXT=default, and DOCKER_HOST over any context.
        let e = with(&[("DOCKER_CONFIG", d), ("DOCKER_CONTEXT", "default")]).unwrap();
        assert_eq!(e.transport, Transport::Unix(DEFAULT_SOCKET.into()));
        let e = with(&[
            ("DOCKER_CONFIG", d),
            ("DOCKER_CONTEXT", "remote"),
            ("DOCKER_HOST", "unix:///s"),
        ])
        .unwrap();
        assert_eq!(e.transport, Transport::Unix("/s".into()));
        // An https:// context is TLS even without TLS files (and needs a CA).
        context(dir.path(), "bare-https", "https://10.1.1.3", false, false);
        let err = with(&[("DOCKER_CONFIG", d), ("DOCKER_CONTEXT", "bare-https")]).unwrap_err();
        assert!(
            matches!(err, EndpointError::BadUrl { ref why, .. } if why.contains("ca.pem")),
            "{err}"
        );
        // Errors.
        let err = with(&[("DOCKER_CONFIG", d), ("DOCKER_CONTEXT", "nope")]).unwrap_err();
        assert!(matches!(err, EndpointError::UnknownContext { .. }), "{err}");
        let err = with(&[("DOCKER_CONFIG", d), ("DOCKER_CONTEXT", "insecure")]).unwrap_err();
        assert!(matches!(err, EndpointError::Unverified { .. }), "{err}");
        std::fs::write(dir.path().join("config.json"), "{").unwrap();
        let err = with(&[("DOCKER_CONFIG", d)]).unwrap_err();
        assert!(matches!(err, EndpointError::Config { .. }), "{err}");
    }
}
