//! The issuer's accept loop: HTTP/1.1 over hyper, with what a listener open
//! to the world needs and `axum::serve` does not offer.
//!
//! - **Connection caps**: at most `limits.max_connections` open connections
//!   in all, `limits.max_connections_per_peer` from one IP address. A
//!   connection past either cap is answered `503` (`Connection: close`,
//!   written without waiting) and closed at once; it is counted in
//!   `revokd_http_refused_total{reason="max_connections"}` or
//!   `{reason="max_connections_per_peer"}`.
//! - **Header read timeout**: a connection that has not sent a whole request
//!   head within `limits.header_read_timeout` (counted from when the server
//!   starts waiting for it, so an idle keep-alive connection too) is closed,
//!   `{reason="header_timeout"}`.
//! - **Write timeout**: a connection whose peer does not read what it is
//!   sent (a write waiting on a full socket buffer) for as long again is
//!   closed, `{reason="write_timeout"}`: otherwise a peer that pipelines
//!   requests and never reads holds its connection and the answers buffered
//!   for it forever.
//! - **Graceful shutdown**: when `shutdown` resolves the listener is closed at
//!   once, idle connections are closed, and the ones serving a request finish
//!   it; [`serve`] returns when the last one has.
//!
//! Each request carries its peer's `ConnectInfo<SocketAddr>`, like
//! `into_make_service_with_connect_info`, for the per-peer limits.
//!
//! [`serve_router`] also accepts on a Unix-domain socket ([`Listener`]),
//! for a gateway on the same host: its peers are all local and count as
//! one peer, `127.0.0.1`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tower::ServiceExt;

use super::{AppState, no_store, router};
use crate::config::ListenAddr;
use crate::metrics::ConnectionMetrics;

/// What a connection over a cap is sent before it is closed.
const REFUSED: &[u8] = concat!(
    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n",
    no_store::raw_lines!(),
    "retry-after: 1\r\nconnection: close\r\ncontent-length: 79\r\n\r\n",
    "{\"error\":\"temporarily_unavailable\",\"error_description\":\"too many connections\"}\n"
)
.as_bytes();

/// The accept loop's limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest a connection may take to send a request head.
    pub header_read_timeout: Duration,
    /// Open connections, all peers together.
    pub max_connections: usize,
    /// Open connections from one peer IP address.
    pub max_connections_per_peer: usize,
}

/// Serves the issuer's [`router`] for `state` on `listener` until `shutdown`
/// resolves, then drains (see the module documentation). Errors only if the
/// listener itself fails for good.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = &state.config.limits;
    let limits = ConnectionLimits {
        header_read_timeout: limits.header_read_timeout,
        max_connections: limits.max_connections,
        max_connections_per_peer: limits.max_connections_per_peer,
    };
    let metrics = state.metrics.connections.clone();
    serve_router(listener, router(state), limits, metrics, shutdown).await
}

/// A bound listener the accept loop serves: TCP, or a Unix-domain socket.
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix-domain socket listener.
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Listener {
        Listener::Tcp(listener)
    }
}

impl Listener {
    /// Binds `addr`. A Unix socket file left by an earlier run is replaced
    /// (any other file at that path is an error), and the new one is open
    /// to every local user, as a loopback port is.
    pub async fn bind(addr: &ListenAddr) -> std::io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(addr) => TcpListener::bind(addr).await.map(Listener::Tcp),
            ListenAddr::Unix(path) => {
                use std::os::unix::fs::{FileTypeExt, PermissionsExt};
                if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket()) {
                    std::fs::remove_file(path)?;
                }
                let listener = UnixListener::bind(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
                Ok(Listener::Unix(listener))
            }
        }
    }

    /// Where it listens (the port a `:0` bind was given, say).
    pub fn local_addr(&self) -> std::io::Result<ListenAddr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map(ListenAddr::Tcp),
            Listener::Unix(listener) => {
                let addr = listener.local_addr()?;
                let path = addr
                    .as_pathname()
                    .ok_or_else(|| std::io::Error::other("the Unix socket has no path name"))?;
                Ok(ListenAddr::Unix(path.to_owned()))
            }
        }
    }

    /// The next connection, with its peer's address (`127.0.0.1:0` for a
    /// Unix-socket peer).
    async fn accept(&self) -> std::io::Result<(Box<dyn Io>, SocketAddr)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                // One writev per answer: never wait for the peer's ack.
                stream.set_nodelay(true)?;
                Ok((Box::new(stream), peer))
            }
            Listener::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                Ok((Box::new(stream), SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))
            }
        }
    }
}

/// A stream whose writes fail with `TimedOut` once one has waited `bound`
/// for the peer to read: hyper has no write timeout of its own.
struct WriteDeadline<T> {
    inner: T,
    bound: Duration,
    /// Armed while a write waits; disarmed by any progress.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    fn new(inner: T, bound: Duration) -> WriteDeadline<T> {
        WriteDeadline {
            inner,
            bound,
            stalled: None,
        }
    }

    /// What a write's poll says, with the deadline applied.
    fn judge<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: std::task::Poll<std::io::Result<R>>,
    ) -> std::task::Poll<std::io::Result<R>> {
        use std::task::Poll;
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let bound = self.bound;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(bound)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer read nothing for the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.judge(cx, poll)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.judge(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.judge(cx, poll)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether a connection ended on [`WriteDeadline`]'s timeout.
fn is_write_timeout(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = cause.source();
    }
    false
}

/// A connection's byte stream, whichever listener it came from.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {
    /// Writes what fits now, never waiting (the refusal).
    fn try_write(&self, bytes: &[u8]) -> std::io::Result<usize>;
}

impl Io for tokio::net::TcpStream {
    fn try_write(&self, bytes: &[u8]) -> std::io::Result<usize> {
        tokio::net::TcpStream::try_write(self, bytes)
    }
}

impl Io for tokio::net::UnixStream {
    fn try_write(&self, bytes: &[u8]) -> std::io::Result<usize> {
        tokio::net::UnixStream::try_write(self, bytes)
    }
}

/// Serves any `app` the same way (the gate's too): connection caps, header
/// read timeout, graceful drain.
pub async fn serve_router(
    listener: impl Into<Listener>,
    app: axum::Router,
    limits: ConnectionLimits,
    metrics: ConnectionMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.into();
    let open = Arc::new(Open::new(
        limits.max_connections,
        limits.max_connections_per_peer,
        metrics.clone(),
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; `recv` answers `None` once the
    // last one is gone.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::error!(error = %e, "accepting a connection");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let slot = match open.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                metrics.refused(reason);
                // Best effort, never waiting: the socket's send buffer is
                // empty, so the answer fits unless the peer is gone.
                let _ = stream.try_write(REFUSED);
                drop(stream);
                continue;
            }
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let stream = WriteDeadline::new(stream, limits.header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let mut closing = closing_rx.clone();
        let alive = alive_tx.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _alive = alive;
            tokio::pin!(conn);
            let closed = async move {
                let _ = closing.wait_for(|closing| *closing).await;
            };
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = closed => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    metrics.refused("header_timeout");
                } else if is_write_timeout(&e) {
                    metrics.refused("write_timeout");
                }
                tracing::debug!(error = %crate::error::Chain(&e), %peer, "connection ended");
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

/// Errors of one connection, not of the listener (as `axum::serve` sorts
/// them).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// Open connections, in all and per peer address.
struct Open {
    max: usize,
    max_per_peer: usize,
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
    metrics: ConnectionMetrics,
}

/// One admitted connection; dropping it frees its place.
struct Slot {
    open: Arc<Open>,
    peer: IpAddr,
}

impl Open {
    fn new(max: usize, max_per_peer: usize, metrics: ConnectionMetrics) -> Open {
        Open {
            max,
            max_per_peer,
            counts: Mutex::new((0, HashMap::new())),
            metrics,
        }
    }

    /// A place for a connection from `peer`, or the name of the cap it is
    /// over.
    fn admit(self: &Arc<Open>, peer: IpAddr) -> Result<Slot, &'static str> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_peer) = &mut *counts;
        if *total >= self.max {
            return Err("max_connections");
        }
        let mine = by_peer.entry(peer).or_insert(0);
        if *mine >= self.max_per_peer {
            return Err("max_connections_per_peer");
        }
        *mine += 1;
        *total += 1;
        self.metrics.http_connections.inc();
        Ok(Slot {
            open: self.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_peer) = &mut *counts;
        *total = total.saturating_sub(1);
        if let Some(mine) = by_peer.get_mut(&self.peer) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                by_peer.remove(&self.peer);
            }
        }
        self.open.metrics.http_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_in_all_and_per_peer_and_free_on_drop() {
        let metrics = ConnectionMetrics::register(&prometheus::Registry::new()).unwrap();
        let open = Arc::new(Open::new(3, 2, metrics));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = open.admit(a).unwrap();
        let _a2 = open.admit(a).unwrap();
        assert_eq!(open.admit(a).err(), Some("max_connections_per_peer"));
        let _b1 = open.admit(b).unwrap();
        assert_eq!(open.admit(b).err(), Some("max_connections"));
        drop(a1);
        let _a3 = open.admit(a).unwrap();
        drop(_a3);
        drop(_a2);
        assert!(!open.counts.lock().unwrap().1.contains_key(&a));
    }

    #[test]
    fn the_refusal_is_well_formed() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
        for (name, value) in [
            ("cache-control", no_store::CACHE_CONTROL),
            ("pragma", no_store::PRAGMA),
        ] {
            assert!(head.contains(&format!("\r\n{name}: {value}\r\n")), "{name}");
        }
    }
}
