//! The OAuth form parser (`OAuthForm::parse`) and client authentication
//! (`Clients::authenticate`: the `Authorization: Basic` parser and
//! `client_secret_post`) on arbitrary input.
//!
//! Input: `Authorization header value \n form body`. Without a newline the
//! whole input is the form body and no header is sent.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use revokd::issuer::form::OAuthForm;
use revokd_fuzz::authenticate;

/// Parameters the endpoints read.
const NAMES: [&str; 8] = [
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "username",
    "password",
    "refresh_token",
    "token",
];

fuzz_target!(|data: &[u8]| {
    let (authorization, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };

    // The whole input as a body, too: the parser sees newlines and all.
    let _ = OAuthForm::parse(data);

    let Ok(form) = OAuthForm::parse(body) else {
        return;
    };
    for name in NAMES {
        if let Some(value) = form.get(name) {
            // RFC 6749 §3.1: an empty parameter counts as absent.
            assert!(!value.is_empty(), "empty {name} kept");
            assert!(
                !value.chars().any(char::is_control),
                "control character kept"
            );
            assert_eq!(form.require(name).ok(), Some(value));
        } else {
            assert!(form.require(name).is_err());
        }
    }
    // Parsing is deterministic.
    let again = OAuthForm::parse(body).expect("the same body parses twice");
    for name in NAMES {
        assert_eq!(form.get(name), again.get(name));
    }

    let mut headers = HeaderMap::new();
    if let Some(raw) = authorization {
        let Ok(value) = HeaderValue::from_bytes(raw) else {
            return;
        };
        headers.insert(header::AUTHORIZATION, value);
    }
    if let Ok(client) = authenticate(&headers, &form) {
        // Authenticated: the id came from exactly one place.
        if let Some(body_id) = form.get("client_id") {
            assert_eq!(body_id, client.id, "authenticated a different client_id");
        }
    }
    // The same header twice is refused, whatever it says.
    if let Some(value) = headers.get(header::AUTHORIZATION).cloned() {
        headers.append(header::AUTHORIZATION, value);
        assert!(authenticate(&headers, &form).is_err());
    }
});
