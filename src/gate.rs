//! `revokd gate`: the check a gateway asks before it forwards a request, so
//! a service in any language enforces revocations without code of its own.
//!
//! `/check` and `/check/*` take any method and answer from the request's
//! `Authorization` header, in the shapes nginx `auth_request`, Envoy
//! `ext_authz` (HTTP service) and Traefik `forwardAuth` expect:
//!
//! | case | answer |
//! |---|---|
//! | a valid, unrevoked token with every scope asked | 200, `X-Auth-Sub`, `X-Auth-Client-Id`, `X-Auth-Scope` |
//! | no token, junk, expired, wrong audience, revoked | 401, `WWW-Authenticate` (RFC 6750) |
//! | a scope a path rule or `X-Required-Scope` asks for is missing | 403 `insufficient_scope` |
//! | the denylist stale past its bound with fail-closed, or never synced | 503 |
//!
//! The layer of [`ResourceServer`] decides the 401s and 503s exactly as for
//! an embedded resource server; this module adds the path rules.
//!
//! # The original path
//!
//! Path rules match the path of the request the gateway is deciding on:
//! the rest of `/check/*` (Envoy appends it to its `path_prefix`), else
//! `X-Original-URI` (nginx, set in its config), else `X-Forwarded-Uri`
//! (Traefik), else `X-Original-URL` (ingress-nginx, a whole URL). The path is normalised before matching, as the upstream will
//! read it (percent-decoding, `//`, `.` and `..`), and rules match whole
//! segments: `/admin` covers `/admin` and `/admin/x`, never `/administrator`,
//! and `/%61dmin` or `/api/../admin` cannot slip past it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::{Deserialize, Serialize};

use crate::layer::{InsufficientScope, VerifiedToken};
use crate::resource_server::ResourceServer;

/// Where the gateways put the original request's URI, in the order read.
const ORIGINAL_URI_HEADERS: [&str; 3] = ["x-original-uri", "x-forwarded-uri", "x-original-url"];

/// A scope asked per request by the gateway (space-separated, all needed).
const REQUIRED_SCOPE_HEADER: &str = "x-required-scope";

/// The identity headers of a 200.
const SUB_HEADER: HeaderName = HeaderName::from_static("x-auth-sub");
const CLIENT_ID_HEADER: HeaderName = HeaderName::from_static("x-auth-client-id");
const SCOPE_HEADER: HeaderName = HeaderName::from_static("x-auth-scope");

/// Requests under `path` need every scope of `scopes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    /// A path prefix, matched on whole segments (`/admin`).
    pub path: String,
    /// The scopes a token needs there.
    pub scopes: Vec<String>,
}

impl PathRule {
    /// Parses `PATH=SCOPE[,SCOPE…]` (the `--scope` flag).
    pub fn parse(spec: &str) -> Result<PathRule, String> {
        let (path, scopes) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected PATH=SCOPE[,SCOPE...]"))?;
        let scopes: Vec<String> = scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        PathRule::check(path, &scopes).map_err(|problem| format!("{spec:?}: {problem}"))?;
        Ok(PathRule {
            path: normalize_path(path),
            scopes,
        })
    }

    /// Whether `path` and `scopes` make a rule: an absolute path and at
    /// least one scope, none empty.
    pub fn check(path: &str, scopes: &[String]) -> Result<(), String> {
        if !path.starts_with('/') {
            return Err(format!("the path {path:?} must start with /"));
        }
        if scopes.is_empty() || scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            return Err(format!(
                "the rule for {path:?} needs at least one scope, without spaces"
            ));
        }
        Ok(())
    }

    fn covers(&self, path: &str) -> bool {
        let prefix = self.path.trim_end_matches('/');
        prefix.is_empty()
            || path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// The gate's routes: `/check` and `/check/*` behind the resource server's
/// layer, and its ops routes (`/metrics`, `/readyz`, `/healthz`, RFC 9728).
pub fn router(server: &ResourceServer, rules: Vec<PathRule>) -> Router {
    let rules: Arc<[PathRule]> = rules
        .into_iter()
        .map(|rule| PathRule {
            path: normalize_path(&rule.path),
            ..rule
        })
        .collect();
    Router::new()
        .route("/check", any(check))
        .route("/check/{*path}", any(check))
        .with_state(rules)
        .layer(server.layer())
        .merge(server.ops_routes())
}

/// A verified token reached here: the scopes the path and the gateway ask
/// for, then the identity headers.
async fn check(
    State(rules): State<Arc<[PathRule]>>,
    token: VerifiedToken,
    request: Request,
) -> Response {
    let path = normalize_path(&original_path(&request));
    let asked = rules
        .iter()
        .filter(|rule| rule.covers(&path))
        .flat_map(|rule| rule.scopes.iter().map(String::as_str));
    let from_header = required_by_header(request.headers());
    if let Some(missing) = asked
        .chain(from_header.iter().map(String::as_str))
        .find(|scope| !token.has_scope(scope))
    {
        return InsufficientScope {
            scope: missing.to_owned(),
        }
        .into_response();
    }
    identity(&token)
}

/// 200 with who the token is for, or 401 when a claim cannot be a header
/// value (a control character): the upstream must never see a request
/// whose identity was dropped.
fn identity(token: &VerifiedToken) -> Response {
    let values = [
        (SUB_HEADER, token.sub.as_str()),
        (CLIENT_ID_HEADER, token.client_id.as_str()),
        (SCOPE_HEADER, token.scope.as_str()),
    ];
    let mut response = StatusCode::OK.into_response();
    for (name, value) in values {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                response.headers_mut().insert(name, value);
            }
            Err(_) => {
                tracing::warn!(header = %name, "a claim is not a valid header value; refused");
                return StatusCode::UNAUTHORIZED.into_response();
            }
        }
    }
    response
}

/// The path the gateway is deciding on (query and fragment removed).
fn original_path(request: &Request) -> String {
    let own = request.uri().path();
    let uri = match own.strip_prefix("/check") {
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => ORIGINAL_URI_HEADERS
            .iter()
            .find_map(|name| request.headers().get(*name))
            .and_then(|value| value.to_str().ok())
            .unwrap_or("/")
            .to_owned(),
    };
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    if path.starts_with('/') {
        path.to_owned()
    } else {
        // An absolute URI (`http://host/path`) or junk: its path, or `/`.
        path.split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|at| rest[at..].to_owned()))
            .unwrap_or_else(|| "/".to_owned())
    }
}

fn required_by_header(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(REQUIRED_SCOPE_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split([' ', ',']))
        .filter(|scope| !scope.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The path as an upstream reads it: percent-decoded (`%2F` too, so it
/// cannot hide a segment), `\` read as `/` (some servers do), empty and `.`
/// segments dropped, `..` removing the one before (never above the root).
pub fn normalize_path(path: &str) -> String {
    let decoded = percent_decode(path).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

/// Decodes `%XX` until nothing is left to decode (so `%252e` cannot hide a
/// `.` from one round of decoding); bytes that are not UTF-8 are replaced.
fn percent_decode(path: &str) -> String {
    let mut current = path.to_owned();
    // Each round shortens the string; bounded anyway.
    for _ in 0..8 {
        let bytes = current.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
                (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                    let value = hex(h).unwrap_or_default() * 16 + hex(l).unwrap_or_default();
                    out.push(u8::try_from(value).unwrap_or(b'?'));
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_as_the_upstream_reads_them() {
        for (raw, normal) in [
            ("/", "/"),
            ("", "/"),
            ("/admin", "/admin"),
            ("/admin/", "/admin"),
            ("//admin//x", "/admin/x"),
            ("/api/../admin", "/admin"),
            ("/../../admin", "/admin"),
            ("/./admin/.", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%2561dmin", "/admin"),
            ("/api%2F..%2Fadmin", "/admin"),
            ("/api\\..\\admin", "/admin"),
            ("/%2e%2e/admin", "/admin"),
            ("/caf%C3%A9", "/café"),
            ("/bad%zz", "/bad%zz"),
            ("/%ff", "/\u{fffd}"),
        ] {
            assert_eq!(normalize_path(raw), normal, "{raw}");
        }
    }

    #[test]
    fn rules_match_whole_segments() {
        let rule = PathRule::parse("/admin=admin,audit").unwrap();
        assert_eq!(rule.scopes, ["admin", "audit"]);
        assert!(rule.covers("/admin"));
        assert!(rule.covers("/admin/users"));
        assert!(!rule.covers("/administrator"));
        assert!(!rule.covers("/"));
        let root = PathRule::parse("/=read").unwrap();
        assert!(root.covers("/") && root.covers("/anything"));
        assert!(PathRule::parse("admin=x").is_err());
        assert!(PathRule::parse("/admin=").is_err());
        assert!(PathRule::parse("/admin").is_err());
    }

    #[test]
    fn the_original_path_comes_from_the_check_path_then_the_headers() {
        let request = |uri: &str, headers: &[(&str, &str)]| {
            let mut builder = axum::http::Request::builder().uri(uri);
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(axum::body::Body::empty()).unwrap()
        };
        assert_eq!(original_path(&request("/check/api/x?y=1", &[])), "/api/x");
        let nginx = request("/check", &[("x-original-uri", "/admin/?q")]);
        assert_eq!(original_path(&nginx), "/admin/");
        let traefik = request("/check", &[("x-forwarded-uri", "/w#f")]);
        assert_eq!(original_path(&traefik), "/w");
        let absolute = request("/check", &[("x-original-uri", "http://h/admin")]);
        assert_eq!(original_path(&absolute), "/admin");
        let ingress = request("/check", &[("x-original-url", "https://h/admin?x")]);
        assert_eq!(original_path(&ingress), "/admin");
        assert_eq!(original_path(&request("/check", &[])), "/");
        // `/checkout` is not the check path with a suffix.
        let checkout = request("/checkout", &[("x-original-uri", "/admin")]);
        assert_eq!(original_path(&checkout), "/admin");
    }

    #[test]
    fn the_header_asks_for_scopes_separated_by_spaces_or_commas() {
        let mut headers = HeaderMap::new();
        headers.append(
            REQUIRED_SCOPE_HEADER,
            HeaderValue::from_static("read  write"),
        );
        headers.append(REQUIRED_SCOPE_HEADER, HeaderValue::from_static("a,b"));
        assert_eq!(required_by_header(&headers), ["read", "write", "a", "b"]);
    }
}
