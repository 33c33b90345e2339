//! The resource-server side: the verifier on real and crafted tokens, the
//! tower layer behind a real axum server, end to end with real processes,
//! and a subscriber written in Python.

mod builder;
pub mod e2e;
mod layer;
mod python;
mod verify;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use revokd::signing::{SigningAlg, SigningKey, SigningKeys, generate_pem};
use revokd::verify::{Verifier, VerifierConfig};
use serde_json::{Value, json};

use crate::loopback::{self, ServerTask};
use crate::support::Server;

/// The audience of the test issuer's `web` and `other` clients.
pub const AUDIENCE: &str = "api";

/// A verifier of `issuer`'s tokens by discovery, checking its denylist.
pub async fn verifier_for(issuer: &Server) -> Verifier {
    Verifier::discover(
        VerifierConfig::new(issuer.base.clone(), AUDIENCE),
        Some(issuer.state.denylist.clone()),
    )
    .await
    .unwrap()
}

/// A response's `WWW-Authenticate` value (empty when absent).
pub fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    revokd::clock::now_secs()
}

/// Access-token claims as the issuer writes them, for `iss`, valid for 5 min.
pub fn claims(iss: &str) -> Value {
    let now = now();
    json!({
        "iss": iss, "sub": "alice", "aud": AUDIENCE, "client_id": "web",
        "scope": "read", "iat": now, "exp": now + 300,
        "jti": format!("crafted-{}", rand_suffix()), "sid": "s-crafted",
    })
}

fn rand_suffix() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed) as u64 ^ now()
}

/// Signs `claims` with `key` under a header of `typ` (None: no typ) and kid.
pub fn sign_with(key: &SigningKey, typ: Option<&str>, kid: Option<&str>, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(key.algorithm());
    header.typ = typ.map(str::to_owned);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key.encoding_key()).unwrap()
}

/// Signs an access token the way the issuer does with its active key.
pub fn sign_access(keys: &SigningKeys, claims: &Value) -> String {
    let key = keys.active();
    sign_with(key, Some("at+jwt"), Some(key.kid()), claims)
}

/// A minimal authorization server on 127.0.0.1: RFC 8414 metadata and a
/// JWK set the test can swap, counting JWK set fetches.
pub struct KeyServer {
    pub base: String,
    state: Arc<KeyServerState>,
    _task: ServerTask,
}

struct KeyServerState {
    base: String,
    jwks: Mutex<String>,
    fetches: AtomicUsize,
}

impl KeyServer {
    pub async fn start(keys: &SigningKeys) -> KeyServer {
        let (listener, base) = loopback::listener().await;
        let state = Arc::new(KeyServerState {
            base: base.clone(),
            jwks: Mutex::new(keys.jwks_json().to_owned()),
            fetches: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(|State(s): State<Arc<KeyServerState>>| async move {
                    axum::Json(json!({
                        "issuer": s.base,
                        "jwks_uri": format!("{}/jwks", s.base),
                    }))
                }),
            )
            .route(
                "/jwks",
                get(|State(s): State<Arc<KeyServerState>>| async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    s.jwks.lock().unwrap().clone()
                }),
            )
            .with_state(state.clone());
        let task = loopback::serve_on(listener, app);
        KeyServer {
            base,
            state,
            _task: task,
        }
    }

    /// Publishes another JWK set.
    pub fn set_keys(&self, keys: &SigningKeys) {
        *self.state.jwks.lock().unwrap() = keys.jwks_json().to_owned();
    }

    /// JWK set fetches so far.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

/// One signing key of `alg` named `kid`.
pub fn key(alg: SigningAlg, kid: &str) -> SigningKey {
    SigningKey::from_pem(kid, &generate_pem(alg).unwrap()).unwrap()
}
