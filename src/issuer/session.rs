//! The pages' session: a signed cookie naming the signed-in user, and the
//! CSRF tokens of their forms. Stateless, so every issuer replica that
//! shares the signing keys accepts it (the cookie key is derived from the
//! active signing key: rotating it signs everyone out).
//!
//! - `revokd_session=<payload>.<tag>`: payload `v1|<sub>|<session id>|<expires>`
//!   base64url, tag HMAC-SHA-256; HttpOnly, SameSite=Lax, Path=/, Secure
//!   when the issuer is https.
//! - A signed-in form carries HMAC("csrf", session id); the login form,
//!   before any session, a double-submit pair: a random `revokd_login`
//!   cookie and HMAC("login", its value) in the form.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::crypto::{self, RandomError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "revokd_session";
/// The login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "revokd_login";
/// How long a sign-in lasts.
pub const SESSION_SECS: u64 = 8 * 3600;

/// Signs and reads the pages' cookies and CSRF tokens.
pub struct Sessions {
    key: hmac::Key,
    secure: bool,
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user (`sub` of their tokens).
    pub sub: String,
    /// This sign-in's id: CSRF tokens are bound to it.
    pub id: String,
    /// Seconds since the epoch.
    pub expires: u64,
}

impl Session {
    /// When the user signed in, seconds since the epoch.
    pub fn signed_in_at(&self) -> u64 {
        self.expires.saturating_sub(SESSION_SECS)
    }
}

impl Sessions {
    /// Sessions keyed with `secret`; cookies `Secure` when `secure`.
    pub fn new(secret: &[u8; 32], secure: bool) -> Sessions {
        Sessions {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            secure,
        }
    }

    fn tag(&self, purpose: &str, value: &str) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(purpose.as_bytes());
        context.update(&[0]);
        context.update(value.as_bytes());
        URL_SAFE_NO_PAD.encode(context.sign().as_ref())
    }

    fn tag_matches(&self, purpose: &str, value: &str, tag: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        let mut message = purpose.as_bytes().to_vec();
        message.push(0);
        message.extend_from_slice(value.as_bytes());
        hmac::verify(&self.key, &message, &tag).is_ok()
    }

    /// A new sign-in for `sub` at `now`, and its `Set-Cookie` value.
    pub fn start(&self, sub: &str, now: u64) -> Result<(Session, HeaderValue), RandomError> {
        let session = Session {
            sub: sub.to_owned(),
            id: crypto::random_id()?,
            expires: now.saturating_add(SESSION_SECS),
        };
        let payload = URL_SAFE_NO_PAD.encode(format!(
            "v1|{}|{}|{}",
            session.sub, session.id, session.expires
        ));
        let tag = self.tag("session", &payload);
        let cookie = self.cookie(SESSION_COOKIE, &format!("{payload}.{tag}"), SESSION_SECS);
        Ok((session, cookie))
    }

    /// The request's valid, unexpired session, if any.
    pub fn read(&self, headers: &HeaderMap, now: u64) -> Option<Session> {
        let value = cookie(headers, SESSION_COOKIE)?;
        let (payload, tag) = value.split_once('.')?;
        if !self.tag_matches("session", payload, tag) {
            return None;
        }
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let mut parts = payload.split('|');
        let (Some("v1"), Some(sub), Some(id), Some(expires), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let expires: u64 = expires.parse().ok()?;
        (expires > now).then(|| Session {
            sub: sub.to_owned(),
            id: id.to_owned(),
            expires,
        })
    }

    /// The `Set-Cookie` that ends the session.
    pub fn end(&self) -> HeaderValue {
        self.cookie(SESSION_COOKIE, "", 0)
    }

    /// The CSRF token of `session`'s forms.
    pub fn csrf(&self, session: &Session) -> String {
        self.tag("csrf", &session.id)
    }

    /// Whether `token` is `session`'s CSRF token.
    pub fn csrf_ok(&self, session: &Session, token: Option<&str>) -> bool {
        token.is_some_and(|token| self.tag_matches("csrf", &session.id, token))
    }

    /// A login form's CSRF pair: the cookie to set and the form's token.
    pub fn login_csrf(&self) -> Result<(HeaderValue, String), RandomError> {
        let nonce = crypto::random_id()?;
        Ok((
            self.cookie(LOGIN_COOKIE, &nonce, 3600),
            self.tag("login", &nonce),
        ))
    }

    /// Whether a login post carries a matching cookie and token.
    pub fn login_csrf_ok(&self, headers: &HeaderMap, token: Option<&str>) -> bool {
        match (cookie(headers, LOGIN_COOKIE), token) {
            (Some(nonce), Some(token)) => self.tag_matches("login", nonce, token),
            _ => false,
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text =
            format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
        HeaderValue::from_str(&text)
            .unwrap_or_else(|_| HeaderValue::from_static("revokd=; Max-Age=0"))
    }
}

/// The value of cookie `name` in the request (the first, if repeated).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &HeaderValue) -> HeaderMap {
        let pair = value
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        headers
    }

    #[test]
    fn a_session_reads_back_until_it_expires_and_a_forged_one_never() {
        let sessions = Sessions::new(&[7; 32], true);
        let (session, cookie) = sessions.start("alice", 100).unwrap();
        let text = cookie.to_str().unwrap();
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Lax") && text.contains("Secure")
        );
        let headers = with_cookie(&cookie);
        assert_eq!(sessions.read(&headers, 101), Some(session.clone()));
        assert_eq!(sessions.read(&headers, 100 + SESSION_SECS), None);
        // Another key, or a payload changed under the tag: nothing.
        assert_eq!(Sessions::new(&[8; 32], true).read(&headers, 101), None);
        let forged =
            URL_SAFE_NO_PAD.encode(format!("v1|mallory|{}|{}", session.id, session.expires));
        let tag = text.split_once('.').unwrap().1.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}={forged}.{tag}")).unwrap(),
        );
        assert_eq!(sessions.read(&headers, 101), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session_and_the_login_cookie() {
        let sessions = Sessions::new(&[7; 32], false);
        let (a, _) = sessions.start("alice", 1).unwrap();
        let (b, _) = sessions.start("alice", 1).unwrap();
        let token = sessions.csrf(&a);
        assert!(sessions.csrf_ok(&a, Some(&token)));
        assert!(!sessions.csrf_ok(&b, Some(&token)));
        assert!(!sessions.csrf_ok(&a, None));
        let (cookie, token) = sessions.login_csrf().unwrap();
        assert!(sessions.login_csrf_ok(&with_cookie(&cookie), Some(&token)));
        let (other, _) = sessions.login_csrf().unwrap();
        assert!(!sessions.login_csrf_ok(&with_cookie(&other), Some(&token)));
        assert!(!sessions.login_csrf_ok(&HeaderMap::new(), Some(&token)));
    }
}
