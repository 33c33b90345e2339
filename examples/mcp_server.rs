//! An MCP server (streamable HTTP, the `rmcp` crate) protected by revokd:
//! every request to `/mcp` carries an access token whose audience is this
//! server's URL, verified locally by [`ResourceServer`]'s layer, and a
//! revocation (an app disconnected on the issuer's `/account` page) is a 401
//! on the very next call.
//!
//! ```text
//! mcp_server --listen 127.0.0.1:8082 --issuer http://127.0.0.1:8080 --redis redis://127.0.0.1:6379
//!     [--resource http://127.0.0.1:8082/mcp]
//! ```
//!
//! - `POST|GET|DELETE /mcp`: MCP, tools `whoami` (the token's `sub`) and
//!   `add`; without a valid token, a 401 whose `WWW-Authenticate` names
//!   the RFC 9728 metadata document, which is how an MCP client finds the
//!   issuer (then registers, RFC 7591, and signs the user in);
//! - `GET /.well-known/oauth-protected-resource/mcp`: that document;
//! - `GET /metrics`, `/readyz`, `/healthz`: as in `examples/resource_server.rs`.
//!
//! `--resource` (default `http://<listen>/mcp`) is both the RFC 8707
//! resource a client asks for and the audience the layer requires.

#![allow(clippy::print_stderr)]

use std::net::SocketAddr;
use std::process::ExitCode;

use revokd::error::Chain;
use revokd::layer::VerifiedToken;
use revokd::resource_server::ResourceServer;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};

struct Args {
    listen: SocketAddr,
    issuer: String,
    redis: String,
    resource: Option<String>,
}

const USAGE: &str = "usage: mcp_server --listen ADDR --issuer URL --redis URL [--resource URL (default http://ADDR/mcp)]";

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut issuer = None;
    let mut redis = None;
    let mut resource = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => {
                listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?);
            }
            "--issuer" => issuer = Some(value()?),
            "--redis" => redis = Some(value()?),
            "--resource" => resource = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or(USAGE)?,
        issuer: issuer.ok_or(USAGE)?,
        redis: redis.ok_or(USAGE)?,
        resource,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mcp_server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args()?;
    // Bound first: with `--listen 127.0.0.1:0` the default resource URL
    // needs the port.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let resource = args
        .resource
        .unwrap_or_else(|| format!("http://{local}/mcp"));

    // The token's audience is this server's URL: a token the issuer minted
    // for another resource is refused here (RFC 8707).
    let server = ResourceServer::builder()
        .issuer(args.issuer.clone())
        .audience(resource.clone())
        .redis(args.redis.clone())
        .resource(resource.clone())
        .scopes_supported(["read"])
        .start()
        .await
        .map_err(|e| Chain(&e).to_string())?;

    let mcp = StreamableHttpService::new(
        || Ok(Tools),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(server.layer())
        .merge(server.ops_routes());

    // Tests and scripts read this line for the port.
    println!("mcp server listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

/// The tools. Stateless: who is calling comes with each request.
#[derive(Clone)]
struct Tools;

/// `add`'s arguments.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddRequest {
    /// The left operand.
    a: i64,
    /// The right operand.
    b: i64,
}

#[tool_router]
impl Tools {
    /// The `sub` of the access token this call came with: the layer put
    /// the verified claims in the HTTP request's extensions, and rmcp hands
    /// the request's parts to the tool.
    #[tool(description = "Who the access token was issued to (its sub)")]
    fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<String, ErrorData> {
        parts
            .extensions
            .get::<VerifiedToken>()
            .map(|token| token.sub.clone())
            .ok_or_else(|| ErrorData::internal_error("no verified token on the request", None))
    }

    #[tool(description = "The sum of two integers")]
    fn add(&self, Parameters(AddRequest { a, b }): Parameters<AddRequest>) -> String {
        a.saturating_add(b).to_string()
    }
}

#[tool_handler]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("revokd's example MCP server: whoami, add")
    }
}
