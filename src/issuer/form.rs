//! The `application/x-www-form-urlencoded` body of the OAuth endpoints,
//! parsed strictly: RFC 6749 §3.1/§3.2 says a parameter must not appear more
//! than once and an empty one counts as absent; the body must be UTF-8.
//!
//! axum's `Form` answers plain-text 415/422 and folds duplicates into a
//! serde error; this extractor answers RFC 6749 JSON instead.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};

use super::error::OAuthError;

/// The body's parameters, each present at most once and never empty.
#[derive(Debug, Default)]
pub struct OAuthForm(HashMap<String, String>);

impl OAuthForm {
    /// The parameter's value, if it was sent (and not empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameter's value, or `invalid_request` naming it.
    pub fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
    }

    /// Parses a urlencoded body.
    pub fn parse(body: &[u8]) -> Result<OAuthForm, OAuthError> {
        let mut params = HashMap::new();
        for pair in body.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode_component(name)
                .ok_or_else(|| OAuthError::invalid_request("malformed form body"))?;
            let value = decode_component(value)
                .ok_or_else(|| OAuthError::invalid_request("malformed form body"))?;
            if params.contains_key(&name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {} repeated",
                    printable(&name)
                )));
            }
            params.insert(name, value);
        }
        // Empty values are treated as omitted (RFC 6749 §3.1), after the
        // repeat check so `a=&a=x` is still a repeat.
        params.retain(|_, v: &mut String| !v.is_empty());
        Ok(OAuthForm(params))
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::invalid_request(
                "content type must be application/x-www-form-urlencoded",
            ));
        }
        let body = read_body(req, state).await?;
        OAuthForm::parse(&body)
    }
}

/// Reads the whole body under the router's limit; over it is 413.
pub(crate) async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Bytes, OAuthError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OAuthError::PayloadTooLarge
        } else {
            OAuthError::invalid_request("unreadable request body")
        }
    })
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a
/// space, `%XX` a byte; the result must be UTF-8 with no control
/// characters. `None` when malformed.
pub(crate) fn decode_component(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_digit(*raw.get(i + 1)?)?;
                let lo = hex_digit(*raw.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    let text = String::from_utf8(out).ok()?;
    if text.chars().any(char::is_control) {
        return None;
    }
    Some(text)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A parameter name safe to echo in an error: short, printable.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let form =
            OAuthForm::parse(b"grant_type=client_credentials&scope=read+write&x=%41%2b&empty=")
                .unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), Some("read write"));
        assert_eq!(form.get("x"), Some("A+"));
        assert_eq!(form.get("empty"), None);
    }

    #[test]
    fn repeats_and_garbage_are_invalid_requests() {
        for body in [
            &b"a=1&a=2"[..],
            b"a=&a=2",
            b"a=%zz",
            b"a=%4",
            b"a=%ff",
            b"a=\xff",
            b"a=%0a",
        ] {
            let err = OAuthForm::parse(body).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{body:?}");
        }
    }
}
