//! The project's own crypto, on `ring`: random bytes, ids and secrets from
//! the operating system's generator, and SHA-256.
//!
//! Everything else that needs randomness or a digest comes here, so there
//! is one generator and one digest implementation to trust. aws-lc-rs stays
//! where others need it: jsonwebtoken's signatures, rustls, and RSA key
//! generation (`keys`; ring cannot generate RSA keys).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// A SHA-256 digest.
pub type Sha256 = [u8; 32];

/// The operating system's random generator failed (no entropy source, a
/// sandbox refusing `getrandom`): nothing secret can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random generator failed")]
pub struct RandomError;

/// Fills `bytes` from the operating system's generator.
pub fn fill(bytes: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(bytes).map_err(|_| RandomError)
}

/// A random `u64` (seeds, per-process prefixes).
pub fn random_u64() -> Result<u64, RandomError> {
    let mut bytes = [0u8; 8];
    fill(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// 128 random bits, base64url without padding (22 characters): `jti`,
/// `sid`, rotation attempts, ephemeral kids.
pub fn random_id() -> Result<String, RandomError> {
    let mut bytes = [0u8; 16];
    fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// 256 random bits, base64url without padding (43 characters): client
/// secrets.
pub fn random_secret() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Sha256 {
    finish(Context::new(&SHA256), data)
}

/// SHA-256 of several fields, each preceded by its length (8 bytes, big
/// endian), so that no two different lists of fields hash alike
/// (`("ab", "c")` and `("a", "bc")` differ).
pub fn sha256_fields(fields: &[&[u8]]) -> Sha256 {
    let mut context = Context::new(&SHA256);
    for field in fields {
        context.update(&(field.len() as u64).to_be_bytes());
        context.update(field);
    }
    finish(context, &[])
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

fn finish(mut context: Context, last: &[u8]) -> Sha256 {
    context.update(last);
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets_are_fresh_base64url() {
        let (a, b) = (random_id().unwrap(), random_id().unwrap());
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        let secret = random_secret().unwrap();
        assert_eq!(secret.len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
        assert!(
            secret
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn fields_are_length_prefixed() {
        assert_ne!(sha256_fields(&[b"ab", b"c"]), sha256_fields(&[b"a", b"bc"]));
        let mut manual = Vec::new();
        for field in [&b"ab"[..], b"c"] {
            manual.extend_from_slice(&(field.len() as u64).to_be_bytes());
            manual.extend_from_slice(field);
        }
        assert_eq!(sha256_fields(&[b"ab", b"c"]), sha256(&manual));
    }
}
