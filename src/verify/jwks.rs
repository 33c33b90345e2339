//! The issuer's keys: RFC 8414 discovery, fetching the JWK set, and turning
//! its entries into verification keys whose algorithm is the key's own.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::{DiscoveryError, VerifierConfig};
use crate::jwt::VerifyingKey;

/// Largest metadata or JWK set document read from the issuer.
const MAX_DOCUMENT_LEN: usize = 1024 * 1024;

/// The RFC 8414 metadata path.
const METADATA_PATH: &str = ".well-known/oauth-authorization-server";

/// The issuer's public keys by `kid`.
pub(super) type JwkMap = HashMap<String, Arc<VerifyingKey>>;

/// Parses a JWK set, keeping only the keys this verifier can use: public
/// EdDSA (Ed25519), ES256 (P-256) and RS256 keys with a `kid`. A key's `alg`
/// member, when present, must agree with its type; `use`, when present,
/// must be `sig`. Others (symmetric keys above all) are skipped.
pub(super) fn parse_jwks(document: &[u8]) -> Result<JwkMap, DiscoveryError> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(document).map_err(|source| DiscoveryError::Json {
        what: "JWK set".into(),
        source,
    })?;
    let mut map = JwkMap::new();
    for jwk in &set.keys {
        if let Some((kid, key)) = parse_jwk(jwk) {
            map.insert(kid, Arc::new(key));
        }
    }
    if map.is_empty() {
        return Err(DiscoveryError::NoUsableKey);
    }
    Ok(map)
}

fn parse_jwk(jwk: &serde_json::Value) -> Option<(String, VerifyingKey)> {
    let field = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    let kid = field("kid")?;
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let (alg, decoding) = match (field("kty")?, field("crv")) {
        ("OKP", Some("Ed25519")) => (
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(field("x")?).ok()?,
        ),
        ("EC", Some("P-256")) => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(field("x")?, field("y")?).ok()?,
        ),
        ("RSA", _) => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(field("n")?, field("e")?).ok()?,
        ),
        _ => return None,
    };
    let expected = match alg {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        _ => "RS256",
    };
    if field("alg").is_some_and(|a| a != expected) {
        return None;
    }
    Some((kid.to_owned(), VerifyingKey::new(alg, decoding)))
}

/// Where the keys come from.
pub(super) enum KeySource {
    /// Given once; an unknown kid is simply unknown.
    Static,
    /// The issuer's JWK set, refetched on an unknown kid.
    Remote {
        http: reqwest::Client,
        jwks_uri: String,
    },
}

pub(super) fn http_client(config: &VerifierConfig) -> Result<reqwest::Client, DiscoveryError> {
    reqwest::Client::builder()
        .timeout(config.http_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(DiscoveryError::Client)
}

/// RFC 8414 §3: the well-known path goes between the host and the issuer's
/// path (`https://a.example/t1` → `https://a.example/.well-known/oauth-authorization-server/t1`).
pub(super) fn metadata_url(issuer: &str) -> Result<String, DiscoveryError> {
    let mut url =
        reqwest::Url::parse(issuer).map_err(|_| DiscoveryError::Url(issuer.to_owned()))?;
    if !matches!(url.scheme(), "https" | "http") || url.query().is_some() {
        return Err(DiscoveryError::Url(issuer.to_owned()));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("/{METADATA_PATH}{path}"));
    Ok(url.to_string())
}

pub(super) async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, DiscoveryError> {
    let http_error = |source| DiscoveryError::Http {
        url: url.to_owned(),
        source,
    };
    let mut response = http.get(url).send().await.map_err(http_error)?;
    if !response.status().is_success() {
        return Err(DiscoveryError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http_error)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_LEN {
            return Err(DiscoveryError::TooLarge(url.to_owned()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_follows_rfc_8414() {
        assert_eq!(
            metadata_url("https://auth.example.com").unwrap(),
            "https://auth.example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://auth.example.com/tenant1").unwrap(),
            "https://auth.example.com/.well-known/oauth-authorization-server/tenant1"
        );
        assert!(metadata_url("ftp://x").is_err());
        assert!(metadata_url("not a url").is_err());
    }
}
