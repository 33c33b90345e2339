//! HTTP on loopback: a client, a listener on a free port, and a server task
//! aborted when dropped.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

/// A client for loopback servers: no proxy, `timeout` per request.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("a reqwest client")
}

/// A listener on 127.0.0.1 (port chosen by the kernel, held from now on)
/// and its `http://127.0.0.1:<port>` base URL.
pub async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// A server running as a tokio task, aborted when dropped.
pub struct ServerTask(tokio::task::JoinHandle<()>);

impl ServerTask {
    /// Spawns `server` on the current runtime.
    pub fn spawn(server: impl Future<Output = ()> + Send + 'static) -> ServerTask {
        ServerTask(tokio::spawn(server))
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `app` on `listener` (from [`listener`]) until the task is dropped.
pub fn serve_on(listener: tokio::net::TcpListener, app: axum::Router) -> ServerTask {
    ServerTask::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

/// Serves `app` on a fresh loopback listener: its base URL and the task.
pub async fn serve(app: axum::Router) -> (String, ServerTask) {
    let (listener, base) = listener().await;
    (base, serve_on(listener, app))
}
