//! The admin API and disabled clients.

use crate::support::{self, MACHINE, OTHER, WEB, decode_parts};
use serde_json::{Value, json};

async fn admin_post(server: &support::Server, token: &str, body: Value) -> reqwest::Response {
    server.admin_post(token, &body).await
}

#[tokio::test]
async fn the_admin_api_needs_an_admin_bearer_token() {
    let server = support::start().await;
    let url = format!("{}/admin/revocations/sub:alice", server.base);
    let resp = server.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");

    let plain = server.cc_token(WEB).await;
    let resp = server
        .http
        .get(&url)
        .bearer_auth(&plain)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    // A refresh token is not a bearer token.
    let (_, refresh) = server.login(WEB).await;
    let resp = server
        .http
        .get(&url)
        .bearer_auth(&refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // A revoked admin token stops working.
    let admin = server.admin_token().await;
    let resp = server
        .http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "authorized, no rule yet");
    assert_eq!(server.revoke(support::ADMIN, &admin).await, 200);
    let resp = server
        .http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn revoke_by_sub_then_read_then_reapprove() {
    let server = support::start().await;
    let admin = server.admin_token().await;
    let (web_access, web_refresh) = server.login(WEB).await;
    let (other_access, _) = server.login(OTHER).await;
    let machine = server.cc_token(MACHINE).await;

    let resp = admin_post(&server, &admin, json!({"key": "sub:alice"})).await;
    assert_eq!(resp.status(), 200);
    let rule: Value = resp.json().await.unwrap();
    assert_eq!(rule["key"], "sub:alice");
    assert!(rule["revoked_before"].is_u64());
    assert!(!server.active(&web_access).await);
    assert!(!server.active(&other_access).await);
    assert_eq!(server.refresh(WEB, &web_refresh).await.status(), 400);
    assert!(server.active(&machine).await, "other subjects untouched");

    let url = format!("{}/admin/revocations/sub:alice", server.base);
    let resp = server
        .http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let read: Value = resp.json().await.unwrap();
    assert_eq!(read["key"], "sub:alice");

    let resp = server
        .http
        .delete(format!("{}/admin/revocations", server.base))
        .bearer_auth(&admin)
        .json(&json!({"key": "sub:alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(server.active(&web_access).await, "re-approved");
    let resp = server
        .http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = server
        .http
        .delete(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn revoke_by_sid_jti_and_subclient() {
    let server = support::start().await;
    let admin = server.admin_token().await;
    let (a1, _) = server.login(WEB).await;
    let (a2, _) = server.login(WEB).await;
    let (a3, _) = server.login(OTHER).await;
    let (_, c1) = decode_parts(&a1);
    let (_, c2) = decode_parts(&a2);

    let sid = format!("sid:{}", c1["sid"].as_str().unwrap());
    assert_eq!(
        admin_post(&server, &admin, json!({"key": sid}))
            .await
            .status(),
        200
    );
    assert!(!server.active(&a1).await);
    assert!(server.active(&a2).await);

    let jti = format!("jti:{}", c2["jti"].as_str().unwrap());
    let resp = admin_post(
        &server,
        &admin,
        json!({"key": jti, "revoked_before": "all"}),
    )
    .await;
    let rule: Value = resp.json().await.unwrap();
    assert_eq!(rule["revoked_before"], "all");
    assert!(!server.active(&a2).await);

    assert!(server.active(&a3).await);
    let resp = admin_post(&server, &admin, json!({"key": "subclient:alice/other"})).await;
    assert_eq!(resp.status(), 200);
    assert!(!server.active(&a3).await);
    // Path form with an encoded slash.
    let url = format!("{}/admin/revocations/subclient:alice%2Fother", server.base);
    let resp = server
        .http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = server.metrics().await;
    assert!(metrics.contains("revokd_revocations_total{kind=\"subclient\",source=\"admin\"} 1"));
}

#[tokio::test]
async fn a_disabled_client_gets_no_new_tokens_until_reapproved() {
    let server = support::start().await;
    let admin = server.admin_token().await;
    let old = server.cc_token(MACHINE).await;
    let resp = admin_post(
        &server,
        &admin,
        json!({"key": "client:machine", "revoked_before": "all"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(!server.active(&old).await);
    let resp = server
        .post_form(
            "/oauth2/token",
            Some(MACHINE),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    let resp = server
        .http
        .delete(format!("{}/admin/revocations/client:machine", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    server.cc_token(MACHINE).await;
}

#[tokio::test]
async fn bad_admin_requests_are_400() {
    let server = support::start().await;
    let admin = server.admin_token().await;
    for body in [
        json!({"key": "user:alice"}),
        json!({"key": "subclient:alice"}),
        json!({"nokey": 1}),
        json!({"key": "sub:alice", "revoked_before": "some"}),
        json!({"key": "sub:alice", "expires_at": 1}),
    ] {
        let resp = admin_post(&server, &admin, body.clone()).await;
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"], "invalid_request");
    }
    let resp = server
        .http
        .post(format!("{}/admin/revocations", server.base))
        .bearer_auth(&admin)
        .body("key=sub:alice")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
