//! Bad input: a clear 4xx in RFC 6749 JSON, never a 5xx.

use crate::support::{self, WEB};
use serde_json::Value;

async fn assert_oauth_error(resp: reqwest::Response, status: u16, error: &str) {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let server = support::start().await;
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    let resp = server
        .http
        .post(format!("{}/oauth2/token", server.base))
        .basic_auth(WEB.0, Some(WEB.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 413, "invalid_request").await;
}

#[tokio::test]
async fn repeated_parameters_are_400() {
    let server = support::start().await;
    let resp = server
        .post_form(
            "/oauth2/token",
            Some(WEB),
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "password"),
            ],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
    let resp = server
        .post_form(
            "/oauth2/introspect",
            Some(WEB),
            &[("token", "a"), ("token", "b")],
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn json_non_utf8_and_missing_content_type_bodies_are_400() {
    let server = support::start().await;
    let url = format!("{}/oauth2/token", server.base);
    let cases: Vec<(Option<&str>, Vec<u8>)> = vec![
        (
            Some("application/json"),
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"grant_type=\xff\xfe".to_vec(),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"grant_type=%ff".to_vec(),
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"grant_type=%zz".to_vec(),
        ),
        (None, b"grant_type=client_credentials".to_vec()),
    ];
    for (ct, body) in cases {
        let mut req = server
            .http
            .post(&url)
            .basic_auth(WEB.0, Some(WEB.1))
            .body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        assert_oauth_error(req.send().await.unwrap(), 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn unsupported_methods_and_unknown_paths_are_json_4xx() {
    let server = support::start().await;
    let resp = server
        .http
        .get(format!(
            "{}/oauth2/token?grant_type=client_credentials",
            server.base
        ))
        .basic_auth(WEB.0, Some(WEB.1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    assert_oauth_error(resp, 405, "invalid_request").await;
    let resp = server
        .http
        .put(format!("{}/oauth2/revoke", server.base))
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 405, "invalid_request").await;
    let resp = server
        .http
        .get(format!("{}/nope", server.base))
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = support::start().await;
    for path in ["/healthz", "/readyz"] {
        let resp = server
            .http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    server.cc_token(WEB).await;
    let _ = server
        .post_form(
            "/oauth2/token",
            Some((WEB.0, "bad")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let metrics = server.metrics().await;
    for needle in [
        "revokd_tokens_issued_total{client_id=\"web\",grant_type=\"client_credentials\"} 1",
        "revokd_token_errors_total{error=\"invalid_client\"} 1",
        "revokd_http_request_duration_seconds_bucket{route=\"/oauth2/token\",status=\"200\"",
        "revokd_refresh_reuse_detected_total 0",
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }
}
