//! The tower layer behind a real axum server on 127.0.0.1.

use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use revokd::layer::{Freshness, RequireTokenLayer, StalePolicy, VerifiedToken};
use revokd::signing::{SigningAlg, SigningKeys};
use revokd::verify::{Verifier, VerifierConfig};
use serde_json::{Value, json};

use super::{AUDIENCE, KeyServer, challenge, claims, key, sign_with, verifier_for};
use crate::loopback::{self, ServerTask};
use crate::support::{self, WEB};

/// A server running `layer` over `/api/resource` (any token) and
/// `/api/write` (the handler requires scope `write`).
struct Api {
    base: String,
    http: reqwest::Client,
    _task: ServerTask,
}

async fn resource(token: VerifiedToken) -> axum::Json<Value> {
    axum::Json(json!({"sub": token.sub, "scope": token.scope}))
}

async fn write(token: VerifiedToken) -> axum::response::Response {
    match token.require_scope("write") {
        Ok(()) => "written".into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn serve(layer: RequireTokenLayer) -> Api {
    let app = Router::new()
        .route("/api/resource", get(resource))
        .route("/api/write", get(write))
        .layer(layer)
        .route("/open", get(|| async { "open" }));
    let (base, task) = loopback::serve(app).await;
    Api {
        base,
        http: loopback::client(Duration::from_secs(10)),
        _task: task,
    }
}

impl Api {
    async fn get(&self, path: &str, authorization: &[&str]) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for value in authorization {
            request = request.header("authorization", *value);
        }
        request.send().await.unwrap()
    }

    async fn bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.get(path, &[&format!("Bearer {token}")]).await
    }
}

#[tokio::test]
async fn valid_tokens_pass_with_their_claims_and_refusals_follow_rfc_6750() {
    let issuer = support::start().await;
    let api = serve(RequireTokenLayer::new(verifier_for(&issuer).await).realm("api")).await;

    let (access, refresh) = issuer.login(WEB).await;
    let ok = api.bearer("/api/resource", &access).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<Value>().await.unwrap(),
        json!({"sub": "alice", "scope": "read"})
    );
    assert_eq!(api.get("/open", &[]).await.status(), 200);

    // No token, or another scheme: a challenge without an error attribute.
    for auth in [&[][..], &["Basic d2ViOndlYi1zZWNyZXQ="][..]] {
        let response = api.get("/api/resource", auth).await;
        assert_eq!(response.status(), 401);
        assert_eq!(challenge(&response), "Bearer realm=\"api\"");
    }
    // Junk, a refresh token, an expired one: invalid_token.
    let mut expired = claims(&issuer.base);
    expired["exp"] = json!(super::now() - 3600);
    let expired = super::sign_access(&issuer.state.keys, &expired);
    for token in ["junk", "a.b.c", &refresh, &expired] {
        let response = api.bearer("/api/resource", token).await;
        assert_eq!(response.status(), 401, "{token}");
        let challenge = challenge(&response);
        assert!(
            challenge.starts_with("Bearer realm=\"api\", error=\"invalid_token\""),
            "{challenge}"
        );
    }
    // Two Authorization headers: invalid_request.
    let twice = format!("Bearer {access}");
    let response = api.get("/api/resource", &[&twice, &twice]).await;
    assert_eq!(response.status(), 400);
    assert!(challenge(&response).contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let issuer = support::start().await;
    let api = serve(RequireTokenLayer::new(verifier_for(&issuer).await)).await;
    let token = issuer.cc_token(WEB).await;
    assert_eq!(api.bearer("/api/resource", &token).await.status(), 200);
    assert_eq!(issuer.revoke(WEB, &token).await, 200);
    let response = api.bearer("/api/resource", &token).await;
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("revoked"));
}

#[tokio::test]
async fn scopes_are_enforced_by_the_layer_and_by_handlers() {
    let issuer = support::start().await;
    let verifier = verifier_for(&issuer).await;
    let read_only = issuer.cc_token(WEB).await; // default scope: read
    let body = issuer
        .token_ok(
            WEB,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
            ],
        )
        .await;
    let read_write = body["access_token"].as_str().unwrap().to_owned();

    let api = serve(RequireTokenLayer::new(verifier.clone())).await;
    let refused = api.bearer("/api/write", &read_only).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        challenge(&refused),
        "Bearer error=\"insufficient_scope\", scope=\"write\""
    );
    assert_eq!(api.bearer("/api/write", &read_write).await.status(), 200);

    let strict = serve(
        RequireTokenLayer::new(verifier)
            .realm("api")
            .require_scope("write"),
    )
    .await;
    let refused = strict.bearer("/api/resource", &read_only).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        challenge(&refused),
        "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"write\""
    );
    assert_eq!(
        strict.bearer("/api/resource", &read_write).await.status(),
        200
    );
}

/// Synced once, an hour ago.
struct Stale;

impl Freshness for Stale {
    fn staleness(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

/// Never synced: nothing is known of revocations.
struct NeverSynced;

impl Freshness for NeverSynced {
    fn staleness(&self) -> Duration {
        Duration::MAX
    }
}

struct Fresh;

impl Freshness for Fresh {
    fn staleness(&self) -> Duration {
        Duration::ZERO
    }
}

#[tokio::test]
async fn a_stale_denylist_fails_closed_only_when_asked_to_and_a_never_synced_one_always() {
    let issuer = support::start().await;
    let verifier = verifier_for(&issuer).await;
    let token = issuer.cc_token(WEB).await;
    let bound = Duration::from_secs(60);

    let open = serve(RequireTokenLayer::new(verifier.clone()).freshness(Stale, bound)).await;
    assert_eq!(open.bearer("/api/resource", &token).await.status(), 200);

    let closed = serve(
        RequireTokenLayer::new(verifier.clone())
            .freshness(Stale, bound)
            .stale_policy(StalePolicy::FailClosed),
    )
    .await;
    let response = closed.bearer("/api/resource", &token).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    // Bad tokens are still plain 401s.
    assert_eq!(closed.bearer("/api/resource", "junk").await.status(), 401);

    let fresh = serve(
        RequireTokenLayer::new(verifier.clone())
            .freshness(Fresh, bound)
            .stale_policy(StalePolicy::FailClosed),
    )
    .await;
    assert_eq!(fresh.bearer("/api/resource", &token).await.status(), 200);

    // A denylist that never synced trusts nothing, even failing open.
    let never = serve(RequireTokenLayer::new(verifier).freshness(NeverSynced, bound)).await;
    let response = never.bearer("/api/resource", &token).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_while_the_request_waits() {
    let old = SigningKeys::new(vec![key(SigningAlg::EdDSA, "old")]).unwrap();
    let server = KeyServer::start(&old).await;
    let mut config = VerifierConfig::new(server.base.clone(), AUDIENCE);
    config.refetch_interval = Duration::ZERO;
    let verifier = Verifier::discover(config, None).await.unwrap();
    let api = serve(RequireTokenLayer::new(verifier)).await;

    let new = key(SigningAlg::RS256, "new");
    let token = sign_with(&new, Some("at+jwt"), Some("new"), &claims(&server.base));
    assert_eq!(api.bearer("/api/resource", &token).await.status(), 401);
    server.set_keys(&SigningKeys::new(vec![new]).unwrap());
    assert_eq!(api.bearer("/api/resource", &token).await.status(), 200);
    assert_eq!(server.fetches(), 3);
}
