//! Engines behind TLS (`tcp://` with `DOCKER_TLS_VERIFY`), as the docker
//! CLI reaches them: the engine's certificate must chain to the CA in
//! `ca.pem`, and to it alone (the system's roots are not asked), and must
//! name the host; `cert.pem` and `key.pem`, when both are there, are this
//! client's certificate. Like the docker CLI, no session is resumed (some
//! TLS front-ends, socat 1.7 among them, fail resumed handshakes when they
//! check client certificates).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use bollard::Docker;
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::endpoint::{CertFiles, EndpointError};
use super::transport::{self, Connecting, Stream};

/// A client for the engine at `address` (`host:port`), with `certs`.
pub fn docker(
    address: &str,
    certs: &CertFiles,
    from: &str,
    timeout: u64,
) -> Result<Result<Docker, bollard::errors::Error>, EndpointError> {
    let (config, server_name) = client_config(address, certs, from)?;
    let connector = Connector {
        address: address.into(),
        server_name,
        tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
    };
    Ok(transport::client(
        connector,
        "https://docker.engine",
        timeout,
    ))
}

/// What one plain request over TLS to the engine at `address` meets, when
/// the API client's own failure says nothing: after a TLS 1.3 handshake the
/// engine's refusal of this client's certificate arrives as an alert on the
/// first read, which a pooled connection may lose. `None` when it answers.
pub async fn probe(address: &str, certs: &CertFiles, from: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (config, server_name) = client_config(address, certs, from).ok()?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let attempt = async {
        let tcp = TcpStream::connect(address).await?;
        let mut stream = tls.connect(server_name, tcp).await?;
        // A write may already meet the closed connection; the alert, if
        // one came, is still there to read.
        let _ = stream
            .write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            .await;
        let _ = stream.flush().await;
        let mut buf = [0u8; 64];
        stream.read(&mut buf).await.map(|_| ())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), attempt).await {
        Ok(Ok(())) | Err(_) => None,
        Ok(Err(e)) => Some(e.to_string()),
    }
}

/// The TLS settings for the engine at `address`: its CA alone, this
/// client's certificate when there is one, no resumption; and the name its
/// certificate must have.
fn client_config(
    address: &str,
    certs: &CertFiles,
    from: &str,
) -> Result<(ClientConfig, ServerName<'static>), EndpointError> {
    let bad = |path: &Path, message: String| EndpointError::TlsFile {
        from: from.to_string(),
        path: path.to_path_buf(),
        message,
    };
    let host = match address.rsplit_once(':') {
        Some((h, _)) => h.trim_matches(|c| c == '[' || c == ']'),
        None => address,
    };
    let server_name = ServerName::try_from(host.to_string()).map_err(|e| {
        bad(
            &certs.ca,
            format!("`{host}` cannot be checked against a certificate: {e}"),
        )
    })?;
    let mut roots = RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&certs.ca)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(&certs.ca, e.to_string()))?;
    if cas.is_empty() {
        return Err(bad(&certs.ca, "no certificate in it".into()));
    }
    for ca in cas {
        roots.add(ca).map_err(|e| bad(&certs.ca, e.to_string()))?;
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&certs.ca, e.to_string()))?
            .with_root_certificates(roots);
    let mut config = if certs.cert.is_file() && certs.key.is_file() {
        let chain = CertificateDer::pem_file_iter(&certs.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(&certs.cert, e.to_string()))?;
        let key =
            PrivateKeyDer::from_pem_file(&certs.key).map_err(|e| bad(&certs.key, e.to_string()))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad(&certs.key, e.to_string()))?
    } else {
        builder.with_no_client_auth()
    };
    config.resumption = Resumption::disabled();
    Ok((config, server_name))
}

/// Opens connections: TCP, then the TLS handshake.
#[derive(Clone)]
struct Connector {
    address: Arc<str>,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
}

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = TokioIo<Stream<TlsStream<TcpStream>>>;
    type Error = io::Error;
    type Future = Connecting<TlsStream<TcpStream>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(&*this.address).await?;
            tcp.set_nodelay(true)?;
            let tls = this.tls.connect(this.server_name, tcp).await?;
            Ok(Stream::new(tls, None))
        })
    }
}
