//! `Cache-Control: no-store` and `Pragma: no-cache`, set here and nowhere
//! else: on every answer that carries a token, a token's state, a rule or
//! an error (RFC 6749 §5.1 and §5.2, RFC 7009, RFC 7662), so no cache
//! between the issuer and its client keeps one.
//!
//! Handlers wrap their answer in [`NoStore`]; [`mark`] is for responses
//! already built; the crate-private `raw_lines!` for the bytes the accept
//! loop writes itself.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The `Cache-Control` value.
pub const CACHE_CONTROL: &str = "no-store";

/// The `Pragma` value (HTTP/1.0 caches).
pub const PRAGMA: &str = "no-cache";

/// The two header lines, CRLF-terminated, as a literal for `concat!`.
macro_rules! raw_lines {
    () => {
        "cache-control: no-store\r\npragma: no-cache\r\n"
    };
}
pub(crate) use raw_lines;

/// Marks a response's headers uncacheable.
pub fn mark(headers: &mut HeaderMap) {
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static(PRAGMA));
}

/// An answer marked uncacheable: `NoStore(Json(body))`, `NoStore(StatusCode::OK)`.
#[derive(Debug, Clone, Copy)]
pub struct NoStore<T>(pub T);

impl<T: IntoResponse> IntoResponse for NoStore<T> {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        mark(response.headers_mut());
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Config;
    use crate::issuer::client_auth::sha256_secret_hash;
    use crate::issuer::{AppState, router};
    use crate::signing::{SigningAlg, SigningKeys};

    #[test]
    fn the_raw_lines_are_the_constants() {
        assert_eq!(
            raw_lines!(),
            format!("cache-control: {CACHE_CONTROL}\r\npragma: {PRAGMA}\r\n")
        );
    }

    fn app() -> axum::Router {
        let toml = format!(
            "issuer = \"http://issuer.test\"\n\
             [[clients]]\nid = \"admin\"\nsecret_hash = \"{}\"\n\
             grants = [\"client_credentials\"]\nscopes = [\"revokd:admin\"]\n",
            sha256_secret_hash("secret")
        );
        let config = Config::from_toml(&toml).unwrap();
        let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
        router(AppState::in_memory(config, keys).unwrap())
    }

    fn request(method: &str, path: &str, content_type: &str, body: String) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode("admin:secret")),
            )
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    }

    /// Sends `req`, checks the answer is marked, returns its status and body.
    async fn marked(app: &axum::Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let what = format!("{} {}", req.method(), req.uri());
        let response = app.clone().oneshot(req).await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["cache-control"], CACHE_CONTROL, "{what}");
        assert_eq!(headers["pragma"], PRAGMA, "{what}");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    #[tokio::test]
    async fn every_answer_about_tokens_rules_or_errors_is_marked() {
        let app = app();
        let form = "application/x-www-form-urlencoded";
        let (status, token) = marked(
            &app,
            request(
                "POST",
                "/oauth2/token",
                form,
                "grant_type=client_credentials".into(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let access = token["access_token"].as_str().unwrap().to_owned();
        let bearer = |method: &str, path: &str, body: &str| {
            let mut req = request(method, path, "application/json", body.to_owned());
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {access}")).unwrap(),
            );
            req
        };
        let cases = [
            request(
                "POST",
                "/oauth2/introspect",
                form,
                format!("token={access}"),
            ),
            bearer("POST", "/admin/revocations", r#"{"key": "sub:mallory"}"#),
            bearer("GET", "/admin/revocations/sub:mallory", ""),
            bearer("DELETE", "/admin/revocations/sub:mallory", ""),
            request("POST", "/oauth2/revoke", form, "token=not-a-token".into()),
            request("POST", "/oauth2/token", form, "grant_type=nope".into()),
            request("GET", "/no/such/route", form, String::new()),
            request("GET", "/oauth2/token", form, String::new()),
        ];
        let mut statuses = Vec::new();
        for req in cases {
            statuses.push(marked(&app, req).await.0.as_u16());
        }
        assert_eq!(statuses, [200, 200, 200, 204, 200, 400, 404, 405]);
    }
}
