//! Signing keys: loading PKCS#8 PEM files, generating keys, the `kid` map
//! used to verify, and the JWK set served at `/.well-known/jwks.json`.
//!
//! The algorithm of a key follows the key itself (Ed25519 → EdDSA, P-256 →
//! ES256, RSA → RS256). Verification looks a token's `kid` up in this map
//! only and allows exactly that key's algorithm, never the header's choice.
//!
//! Crypto stacks: tokens are signed with aws-lc-rs directly, from a key pair
//! parsed once at start-up, and verified by jsonwebtoken on its `aws_lc_rs`
//! backend (the same library underneath). ring generates Ed25519 and P-256
//! keys and random ids; aws-lc-rs generates RSA keys (ring cannot).
//!
//! # Why not `jsonwebtoken::encode`
//!
//! It parses the PKCS#8 document again for every token: for Ed25519 that
//! recomputes the public key (a scalar multiplication, as dear as the
//! signature itself), for P-256 it validates the point, for RSA the key.
//! It also serialises and base64-encodes the header per token, which is a
//! constant per key and kind. [`SigningKey::sign`] keeps the parsed pair and
//! the two encoded headers, so a token costs one claims serialisation, one
//! base64 pass and one signature. The self-test at load verifies a token
//! signed this way through the same checks every token passes.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::json;

use crate::config::SigningKeyConfig;
use crate::jwt::{self, Audience, Claims, Expected, TokenKind, VerifyingKey};

/// The algorithms a signing key can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// Ed25519 (the default).
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSA PKCS#1 v1.5 with SHA-256 (2048 bits when generated here).
    RS256,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            SigningAlg::EdDSA => Algorithm::EdDSA,
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::RS256 => Algorithm::RS256,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = SigningKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EdDSA" | "eddsa" | "Ed25519" | "ed25519" => Ok(SigningAlg::EdDSA),
            "ES256" | "es256" => Ok(SigningAlg::ES256),
            "RS256" | "rs256" => Ok(SigningAlg::RS256),
            _ => Err(SigningKeyError::UnknownAlg),
        }
    }
}

/// Why a key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningKeyError {
    /// The file could not be read.
    #[error("signing key {kid:?}: cannot read {path}: {source}")]
    Io {
        /// The key's kid.
        kid: String,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a `-----BEGIN PRIVATE KEY-----` PEM document.
    #[error(
        "signing key {0:?}: not an unencrypted PKCS#8 PEM key (convert with `openssl pkcs8 -topk8 -nocrypt`)"
    )]
    Pem(String),
    /// PKCS#8, but not Ed25519, P-256 or RSA ≥ 2048 bits.
    #[error("signing key {0:?}: unsupported key type (use Ed25519, P-256 or RSA >= 2048 bits)")]
    Unsupported(String),
    /// The key loads but cannot sign and verify a probe token.
    #[error("signing key {0:?}: self-test failed")]
    SelfTest(String),
    /// No key at all.
    #[error("no signing key")]
    Empty,
    /// Two keys share a kid.
    #[error("signing key kid {0:?} is used twice")]
    DuplicateKid(String),
    /// `--alg` names something else.
    #[error("unknown algorithm: use EdDSA, ES256 or RS256")]
    UnknownAlg,
    /// The random generator or key generation failed.
    #[error("key generation failed")]
    Generate,
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(&'static str);

/// A parsed private key, ready to sign (parsed once, never per token).
enum Signer {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

/// A signature, on the stack: 64 bytes for EdDSA and ES256, the modulus
/// length for RS256 (aws-lc-rs refuses moduli over 8192 bits).
struct Signature {
    bytes: [u8; 1024],
    len: usize,
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

// === impl Signer ===

impl Signer {
    /// Signs `message`.
    fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Result<Signature, SignError> {
        let mut out = Signature {
            bytes: [0; 1024],
            len: 0,
        };
        let fixed = |out: &mut Signature, signature: &[u8]| {
            out.bytes[..signature.len()].copy_from_slice(signature);
            out.len = signature.len();
        };
        match self {
            Signer::Ed25519(pair) => fixed(&mut out, pair.sign(message).as_ref()),
            Signer::Es256(pair) => {
                let signature = pair
                    .sign(rng, message)
                    .map_err(|_| SignError("ECDSA signature"))?;
                fixed(&mut out, signature.as_ref());
            }
            Signer::Rs256(pair) => {
                let len = pair.public_modulus_len();
                let buffer = out
                    .bytes
                    .get_mut(..len)
                    .ok_or(SignError("RSA modulus too long"))?;
                pair.sign(&RSA_PKCS1_SHA256, rng, message, buffer)
                    .map_err(|_| SignError("RSA signature"))?;
                out.len = len;
            }
        }
        Ok(out)
    }

    /// Longest signature, in bytes.
    fn max_len(&self) -> usize {
        match self {
            Signer::Ed25519(_) | Signer::Es256(_) => 64,
            Signer::Rs256(pair) => pair.public_modulus_len(),
        }
    }
}

/// One signing key with everything derived from it once.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    signer: Signer,
    /// The base64url JOSE header of an access token (`typ: at+jwt`) and of a
    /// refresh token (`typ: rt+jwt`) signed by this key: constants, encoded
    /// once.
    headers: [String; 2],
    /// The random generator ECDSA and RSA signing draw from.
    rng: SystemRandom,
    encoding: EncodingKey,
    verifying: VerifyingKey,
    jwk: serde_json::Value,
    /// SHA-256 of the private key: a secret every replica holding the key
    /// shares, from which the pages' cookie key is derived.
    private_digest: crate::crypto::Sha256,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

// === impl SigningKey ===

impl SigningKey {
    /// Loads a PKCS#8 PEM private key; the algorithm follows the key.
    pub fn from_pem(kid: &str, pem: &str) -> Result<SigningKey, SigningKeyError> {
        let der = pem_to_der(pem).ok_or_else(|| SigningKeyError::Pem(kid.to_owned()))?;
        SigningKey::from_pkcs8(kid, &der)
    }

    /// Loads a PKCS#8 DER private key; the algorithm follows the key.
    pub fn from_pkcs8(kid: &str, der: &[u8]) -> Result<SigningKey, SigningKeyError> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let bad = || SigningKeyError::Unsupported(kid.to_owned());
        let (alg, signer, encoding, decoding, mut jwk) = if let Ok(pair) =
            Ed25519KeyPair::from_pkcs8(der)
        {
            // The JWK is built from the public key, not from the PKCS#8
            // document (jsonwebtoken rejects ring's v2 documents there).
            let x = b64(pair.public_key().as_ref());
            let decoding = DecodingKey::from_ed_components(&x).map_err(|_| bad())?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
            (
                SigningAlg::EdDSA,
                Signer::Ed25519(pair),
                EncodingKey::from_ed_der(der),
                decoding,
                jwk,
            )
        } else if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            let point = pair.public_key().as_ref();
            // Uncompressed SEC1 point: 0x04 || X (32) || Y (32).
            let (x, y) = match point {
                [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                _ => return Err(bad()),
            };
            let (x, y) = (b64(x), b64(y));
            let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| bad())?;
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y});
            (
                SigningAlg::ES256,
                Signer::Es256(pair),
                EncodingKey::from_ec_der(der),
                decoding,
                jwk,
            )
        } else if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            if pair.public_modulus_len() < 256 {
                return Err(bad());
            }
            let public = pair.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|_| bad())?;
            // jsonwebtoken's RSA signer wants PKCS#1 (the key inside PKCS#8).
            let encoding = EncodingKey::from_rsa_der(pkcs8_private_key(der).ok_or_else(bad)?);
            let jwk = json!({"kty": "RSA", "n": n, "e": e});
            (
                SigningAlg::RS256,
                Signer::Rs256(pair),
                encoding,
                decoding,
                jwk,
            )
        } else {
            return Err(bad());
        };
        if let Some(map) = jwk.as_object_mut() {
            map.insert("kid".into(), kid.into());
            map.insert("alg".into(), alg.as_str().into());
            map.insert("use".into(), "sig".into());
        }
        let header = |kind: TokenKind| {
            let json = json!({"alg": alg.as_str(), "typ": kind.typ(), "kid": kid});
            URL_SAFE_NO_PAD.encode(json.to_string())
        };
        let key = SigningKey {
            kid: kid.to_owned(),
            alg,
            signer,
            headers: [header(TokenKind::Access), header(TokenKind::Refresh)],
            rng: SystemRandom::new(),
            encoding,
            verifying: VerifyingKey::new(alg.jwt(), decoding),
            jwk,
            private_digest: crate::crypto::sha256(der),
        };
        key.self_test()?;
        Ok(key)
    }

    /// Signs a probe token and verifies it through the same checks every
    /// token of ours passes, so a key jsonwebtoken cannot use is found at
    /// start-up rather than at the first request.
    fn self_test(&self) -> Result<(), SigningKeyError> {
        let failed = || SigningKeyError::SelfTest(self.kid.clone());
        let probe = Claims {
            iss: "self-test".into(),
            sub: "self-test".into(),
            aud: Audience::One("self-test".into()),
            client_id: "self-test".into(),
            scope: String::new(),
            iat: 0,
            exp: 1,
            nbf: None,
            jti: "self-test".into(),
            sid: "self-test".into(),
            resource: Vec::new(),
        };
        let token = self.sign(TokenKind::Access, &probe).map_err(|_| failed())?;
        let header = jwt::read_header(&token).map_err(|_| failed())?;
        let expected = Expected {
            issuer: "self-test",
            audience: Some("self-test"),
            leeway: 0,
        };
        match jwt::check_claims(&token, &header, &self.verifying, expected, 0) {
            Ok(claims) if claims == probe => Ok(()),
            _ => Err(failed()),
        }
    }

    /// Signs `claims` as a token of `kind` with this key: the constant
    /// header, the claims serialised straight into base64url, the signature,
    /// in one buffer allocated once at its final size.
    pub fn sign(&self, kind: TokenKind, claims: &Claims) -> Result<String, SignError> {
        let header = match kind {
            TokenKind::Access => &self.headers[0],
            TokenKind::Refresh => &self.headers[1],
        };
        // Claims of our tokens are a few hundred bytes; a longer one only
        // reallocates.
        let capacity = header.len() + 2 + 4 * (512 + self.signer.max_len()).div_ceil(3);
        let mut token = String::with_capacity(capacity);
        token.push_str(header);
        token.push('.');
        {
            let mut payload =
                base64::write::EncoderStringWriter::from_consumer(&mut token, &URL_SAFE_NO_PAD);
            serde_json::to_writer(&mut payload, claims).map_err(|_| SignError("claims"))?;
            payload.into_inner();
        }
        let signature = self.signer.sign(&self.rng, token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key's algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The jsonwebtoken algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg.jwt()
    }

    /// The private half, for signing tokens by hand (tests, tools).
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The public half, with its validation rules.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The public JWK (RFC 7517), with `kid`, `alg` and `use`.
    pub fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }
}

/// The configured keys: the first signs; all verify and are published.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    active: Arc<SigningKey>,
    by_kid: Arc<HashMap<String, Arc<SigningKey>>>,
    jwks: Arc<str>,
    algs: Vec<&'static str>,
}

// === impl SigningKeys ===

impl SigningKeys {
    /// Builds a set; the first key signs.
    pub fn new(keys: Vec<SigningKey>) -> Result<SigningKeys, SigningKeyError> {
        let mut ordered = Vec::with_capacity(keys.len());
        let mut by_kid = HashMap::new();
        let mut algs = Vec::new();
        for key in keys {
            let key = Arc::new(key);
            if by_kid.insert(key.kid.clone(), key.clone()).is_some() {
                return Err(SigningKeyError::DuplicateKid(key.kid.clone()));
            }
            if !algs.contains(&key.alg.as_str()) {
                algs.push(key.alg.as_str());
            }
            ordered.push(key);
        }
        let active = ordered.first().cloned().ok_or(SigningKeyError::Empty)?;
        let jwks = json!({"keys": ordered.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        Ok(SigningKeys {
            active,
            by_kid: Arc::new(by_kid),
            jwks: jwks.to_string().into(),
            algs,
        })
    }

    /// Loads `[[signing_keys]]` from their files.
    pub fn load(configs: &[SigningKeyConfig]) -> Result<SigningKeys, SigningKeyError> {
        let mut keys = Vec::with_capacity(configs.len());
        for config in configs {
            let pem = std::fs::read_to_string(&config.private_key_file).map_err(|source| {
                SigningKeyError::Io {
                    kid: config.kid.clone(),
                    path: config.private_key_file.display().to_string(),
                    source,
                }
            })?;
            keys.push(SigningKey::from_pem(&config.kid, &pem)?);
        }
        SigningKeys::new(keys)
    }

    /// One freshly generated key of `alg`, kept only in memory (dev mode).
    pub fn ephemeral(alg: SigningAlg) -> Result<SigningKeys, SigningKeyError> {
        let pem = generate_pem(alg)?;
        let id = crate::crypto::random_id().map_err(|_| SigningKeyError::Generate)?;
        let kid = format!("ephemeral-{id}");
        SigningKeys::new(vec![SigningKey::from_pem(&kid, &pem)?])
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The key with this `kid`, if it is ours.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.by_kid.get(kid).map(|k| &**k)
    }

    /// A 256-bit secret for `purpose`, derived from the active key's private
    /// half: the same in every replica that shares the keys, different for
    /// every purpose, unguessable without the key. Rotating the active key
    /// changes it.
    pub fn derived_secret(&self, purpose: &str) -> crate::crypto::Sha256 {
        crate::crypto::sha256_fields(&[
            b"revokd derived secret v1",
            purpose.as_bytes(),
            &self.active.private_digest,
        ])
    }

    /// The JWK set document, serialised once.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// The algorithms of the keys, for the metadata document.
    pub fn algorithms(&self) -> &[&'static str] {
        &self.algs
    }
}

/// Generates a private key and returns it as PKCS#8 PEM
/// (`revokd keygen`).
pub fn generate_pem(alg: SigningAlg) -> Result<String, SigningKeyError> {
    let rng = ring::rand::SystemRandom::new();
    let der: Vec<u8> = match alg {
        SigningAlg::EdDSA => ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| SigningKeyError::Generate)?
            .as_ref()
            .to_vec(),
        SigningAlg::ES256 => ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .map_err(|_| SigningKeyError::Generate)?
        .as_ref()
        .to_vec(),
        SigningAlg::RS256 => {
            use aws_lc_rs::encoding::AsDer;
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| SigningKeyError::Generate)?;
            let der = pair.as_der().map_err(|_| SigningKeyError::Generate)?;
            der.as_ref().to_vec()
        }
    };
    Ok(der_to_pem(&der))
}

fn der_to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (RFC 5208):
/// `SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING key, … }`.
fn pkcs8_private_key(der: &[u8]) -> Option<&[u8]> {
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }
    let (0x30, info, _) = tlv(der)? else {
        return None;
    };
    let (0x02, _, rest) = tlv(info)? else {
        return None;
    };
    let (0x30, _, rest) = tlv(rest)? else {
        return None;
    };
    let (0x04, key, _) = tlv(rest)? else {
        return None;
    };
    Some(key)
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let end = start + pem.get(start..)?.find(END)?;
    let body: String = pem
        .get(start..end)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_with_the_right_algorithm() {
        for alg in [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256] {
            let pem = generate_pem(alg).unwrap();
            let key = SigningKey::from_pem("k", &pem).unwrap();
            assert_eq!(key.alg(), alg);
            assert_eq!(key.jwk()["alg"], alg.as_str());
            assert_eq!(key.jwk()["kid"], "k");
        }
    }

    #[test]
    fn jwks_lists_every_key_and_the_first_signs() {
        let a = SigningKey::from_pem("a", &generate_pem(SigningAlg::EdDSA).unwrap()).unwrap();
        let b = SigningKey::from_pem("b", &generate_pem(SigningAlg::ES256).unwrap()).unwrap();
        let set = SigningKeys::new(vec![a, b]).unwrap();
        assert_eq!(set.active().kid(), "a");
        let jwks: serde_json::Value = serde_json::from_str(set.jwks_json()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert!(set.get("b").is_some() && set.get("c").is_none());
        assert!(!set.jwks_json().contains("\"d\""), "no private part");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            SigningKey::from_pem("x", "nope"),
            Err(SigningKeyError::Pem(_))
        ));
        let pem = der_to_pem(b"not a key");
        assert!(matches!(
            SigningKey::from_pem("x", &pem),
            Err(SigningKeyError::Unsupported(_))
        ));
        assert!(matches!(
            SigningKeys::new(vec![]),
            Err(SigningKeyError::Empty)
        ));
    }
}
