//! Fixtures shared by the fuzz targets and the seed generator: fixed keys
//! (so a seed token signed once keeps verifying run after run), a fixed
//! clock, the verifiers, and the clients of the client-authentication target.
//!
//! The keys below are test keys made for the fuzzer alone; they sign nothing
//! anywhere else.

use std::future::Future;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use revokd::config::{Config, LimitsConfig};
use revokd::issuer::client_auth::{Client, Clients, sha256_secret_hash};
use revokd::issuer::error::OAuthError;
use revokd::issuer::form::OAuthForm;
use revokd::issuer::jwt::{self, Claims, TokenKind};
use revokd::issuer::limit::{Peer, RateLimits};
use revokd::signing::{SigningKeys, SigningKey};
use revokd::metrics::IssuerMetrics;
use revokd::verify::{Verifier, VerifierConfig};

/// The issuer every fixture token names.
pub const ISSUER: &str = "https://auth.fuzz.example";
/// The resource server's audience.
pub const AUDIENCE: &str = "api";
/// The fixed "now" of every check (2027-01-15).
pub const NOW: u64 = 1_800_000_000;

/// The active key (Ed25519).
pub const ED25519_KID: &str = "fuzz-ed25519";
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMdCgoZX2u6GhepInoC/BGpiOdD2LNGaOAjVEkK6NHC0
-----END PRIVATE KEY-----
";

/// A second, retired key (P-256), still in the JWK set.
pub const P256_KID: &str = "fuzz-p256";
const P256_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgz5BCHM9cJabjjiAr
2E9lDveJVdHpLVIEqQ2jz1kDFgWhRANCAATYjRTW7YKFHaoYXjNc98UyRJkvkE/s
Pf4BoH5zKgqjLRwqAOOK9FyzdZXkyJi6q99kfzsMkdmULN9vi0hmKdLa
-----END PRIVATE KEY-----
";

/// The issuer's key set: Ed25519 signs, P-256 stays for rotation.
pub static KEYS: LazyLock<SigningKeys> = LazyLock::new(|| {
    let keys = vec![
        SigningKey::from_pem(ED25519_KID, ED25519_PEM).expect("the fixed Ed25519 key loads"),
        SigningKey::from_pem(P256_KID, P256_PEM).expect("the fixed P-256 key loads"),
    ];
    SigningKeys::new(keys).expect("the fixed key set builds")
});

fn verifier(cache_capacity: usize) -> Verifier {
    let mut config = VerifierConfig::new(ISSUER, AUDIENCE);
    config.cache_capacity = cache_capacity;
    Verifier::with_static_jwks(config, KEYS.jwks_json(), None)
        .expect("the verifier takes the issuer's own JWK set")
}

/// A resource-server verifier with its verified-token cache (small, so
/// eviction runs too).
pub static CACHED_VERIFIER: LazyLock<Verifier> = LazyLock::new(|| verifier(64));
/// The same verifier without a cache: every call runs the full check.
pub static UNCACHED_VERIFIER: LazyLock<Verifier> = LazyLock::new(|| verifier(0));

/// The secret of the fixture client `web`.
pub const WEB_SECRET: &str = "s3cret";
/// The secret of the fixture client whose id needs form-encoding.
pub const ODD_SECRET: &str = "p@ss:w%rd+";
/// That client's id.
pub const ODD_ID: &str = "odd id:ü";

/// The clients of the client-authentication target (SHA-256 secrets only,
/// so authentication never awaits the argon2 pool).
pub static CLIENTS: LazyLock<Clients> = LazyLock::new(|| {
    let toml = format!(
        r#"
issuer = "{ISSUER}"
[[clients]]
id = "web"
secret_hash = "{web}"
grants = ["client_credentials"]
scopes = ["read"]
[[clients]]
id = "{ODD_ID}"
secret_hash = "{odd}"
grants = ["client_credentials"]
"#,
        web = sha256_secret_hash(WEB_SECRET),
        odd = sha256_secret_hash(ODD_SECRET),
    );
    let config = Config::from_toml(&toml).expect("the fixture configuration parses");
    let metrics =
        IssuerMetrics::register(&prometheus::Registry::new()).expect("the issuer metrics register");
    Clients::new(&config, &metrics).expect("the fixture clients resolve")
});

/// The rate limits `Clients::authenticate` consults (argon2 only).
pub static LIMITS: LazyLock<RateLimits> =
    LazyLock::new(|| RateLimits::new(&LimitsConfig::default()));

/// Authenticates with the fixture clients from a loopback peer.
pub fn authenticate(headers: &HeaderMap, form: &OAuthForm) -> Result<Arc<Client>, OAuthError> {
    let peer = Peer(Some(IpAddr::from([127, 0, 0, 1])));
    run_ready(CLIENTS.authenticate(peer, &LIMITS, headers, form))
}

/// Runs a future that must finish without waiting (no I/O, no timers).
/// Panics if it would wait: for the fuzz targets that is a harness bug.
pub fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("future pended in a fuzz target"),
    }
}

/// A compact JWS of `header` and `payload` (raw bytes, base64url-encoded
/// as they are) signed by the fixture key `kid`, with that key's algorithm.
pub fn sign_raw(kid: &str, header: &[u8], payload: &[u8]) -> String {
    let key = KEYS.get(kid).expect("a fixture kid");
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), key.encoding_key(), key.algorithm())
            .expect("the fixture keys sign");
    format!("{message}.{signature}")
}

/// A real token of the issuer (`jwt::sign`), valid at [`NOW`].
pub fn real_token(kind: TokenKind) -> String {
    let aud = match kind {
        TokenKind::Access => jwt::Audience::Many(vec![AUDIENCE.to_owned(), "other".to_owned()]),
        TokenKind::Refresh => jwt::Audience::One(ISSUER.to_owned()),
    };
    let claims = Claims {
        iss: ISSUER.to_owned(),
        sub: "alice".to_owned(),
        aud,
        client_id: "web".to_owned(),
        scope: "read write".to_owned(),
        iat: NOW - 10,
        exp: NOW + 300,
        jti: "q8sXbZfVh0WcJz0m4mQ9Ow".to_owned(),
        sid: "sid-7Jm2".to_owned(),
        resource: Vec::new(),
    };
    jwt::sign(&KEYS, kind, &claims).expect("the fixture key signs")
}
