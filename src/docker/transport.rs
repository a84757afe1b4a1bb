//! What the SSH and TLS transports share: a bollard client whose every
//! connection comes from a connector of ours, and the stream type hyper
//! reads and writes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, Docker, API_DEFAULT_VERSION};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A future of a new connection.
pub type Connecting<T> =
    Pin<Box<dyn std::future::Future<Output = io::Result<TokioIo<Stream<T>>>> + Send>>;

/// A bollard client whose connections `connector` opens. `name` only names
/// the connection pool (`ssh://docker.engine`).
pub fn client<C, T>(
    connector: C,
    name: &str,
    timeout: u64,
) -> Result<Docker, bollard::errors::Error>
where
    C: tower_service::Service<hyper::Uri, Response = TokioIo<Stream<T>>, Error = io::Error>
        + Clone
        + Send
        + Sync
        + 'static,
    C::Future: Send + Unpin + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let transport = move |request: BollardRequest| {
        let client = client.clone();
        async move {
            client
                .request(request)
                .await
                .map_err(|err| bollard::errors::Error::HyperLegacyError { err })
        }
    };
    Docker::connect_with_custom_transport(transport, Some(name), timeout, API_DEFAULT_VERSION)
}

/// One connection: `io`, and what must live as long as it (the `ssh`
/// process of the connection, killed when dropped).
pub struct Stream<T> {
    io: T,
    _keep: Option<tokio::process::Child>,
}

impl<T> Stream<T> {
    pub fn new(io: T, keep: Option<tokio::process::Child>) -> TokioIo<Stream<T>> {
        TokioIo::new(Stream { io, _keep: keep })
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<T> Connection for Stream<T> {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}
