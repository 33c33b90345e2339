//! `GET/POST /oauth2/authorize`: the authorization code flow (RFC 6749
//! §4.1) with PKCE (RFC 7636), `resource` (RFC 8707) and `iss` in the
//! response (RFC 9207), through a login page and a consent page.
//!
//! Until the client and its `redirect_uri` are known to match exactly, a
//! problem is an HTML error page (redirecting to an unchecked URI would make
//! revokd an open redirector); after, it is an error redirect carrying
//! `error`, `state` and `iss`.
//!
//! The request's parameters travel as hidden fields from the login form to
//! the consent form; each post is checked again from scratch. A code is
//! single-use, lives [`CODE_TTL`], and is bound to the client, the redirect
//! URI, the PKCE challenge and the session it will start.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::client_auth::Client;
use super::error::OAuthError;
use super::form::OAuthForm;
use super::limit::Peer;
use super::pages::{self, escape, hidden};
use super::session::Session;
use super::token::granted_scope;
use crate::clock;
use crate::config::GrantType;
use crate::crypto;
use crate::rule::TokenKeys;

/// How long a code may wait to be exchanged.
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// How long a spent code is remembered, so presenting it again revokes
/// what it issued.
pub const SPENT_CODE_TTL: Duration = Duration::from_secs(600);

/// The parameters of an authorization request, carried between pages.
const PARAMS: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
];

/// What a code was issued for (kept in the store under the code's digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the request (the token request must repeat it).
    pub redirect_uri: String,
    /// The S256 PKCE challenge, if the request had one.
    pub code_challenge: Option<String>,
    /// The user who approved.
    pub sub: String,
    /// The scopes approved.
    pub scope: String,
    /// The access token's audience (narrowed by `resource`), empty for the
    /// client's own.
    pub audience: Vec<String>,
    /// The session the tokens will carry: revoked if the code is reused.
    pub sid: String,
}

/// A request that checked out: the client, where to answer, what it asks.
struct Checked {
    client: std::sync::Arc<Client>,
    redirect_uri: String,
    state: Option<String>,
    scope: String,
    code_challenge: Option<String>,
    audience: Vec<String>,
    /// The request's own parameters, to carry as hidden fields.
    hidden: String,
}

/// Where a request stands: refused on a page, refused by redirect, or good.
enum Outcome {
    Page(Response),
    Redirect(Response),
    Ok(Checked),
}

/// `GET /oauth2/authorize`: the login page, or the consent page for a
/// signed-in user, or the code at once for a confidential app the user
/// has connected with these scopes already (see `remembered`).
pub async fn authorize_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match OAuthForm::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(_) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "The authorization request is malformed.",
            );
        }
    };
    let checked = match check(&state, &params).await {
        Outcome::Ok(checked) => checked,
        Outcome::Page(response) | Outcome::Redirect(response) => return response,
    };
    let now = clock::now_secs();
    let Some(session) = state.session(&headers, now) else {
        return login_page(&state, &checked, StatusCode::OK, None);
    };
    if params.get("prompt") != Some("consent") && remembered(&state, &checked, &session, now).await
    {
        return approve(&state, &checked, &session).await;
    }
    consent_page(&state, &checked, &session)
}

/// Whether the signed-in user already has this confidential app connected
/// with every scope it asks for now, so the consent page would ask what was
/// answered: then the code is issued at once (`prompt=consent` asks
/// anyway). A public client is always asked (RFC 8252 §8.6): anyone may
/// send its id, so a code issued without the user would go to whoever
/// receives its redirect (a loopback port, say), with their own PKCE pair.
/// A confidential client's code is worth nothing without its secret. A
/// revocation since the app last got tokens (the user's, the app's, or of
/// this user's tokens for this app, by anyone) means asking again, and so
/// does a store that cannot say.
async fn remembered(state: &AppState, checked: &Checked, session: &Session, now: u64) -> bool {
    if checked.client.is_public() {
        return false;
    }
    let Ok(grants) = state.store.grants(&session.sub, now).await else {
        return false;
    };
    let Some((_, record)) = grants.iter().find(|(id, _)| *id == checked.client.id) else {
        return false;
    };
    let held: Vec<&str> = record.scope.split(' ').collect();
    let covered = checked
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .all(|s| held.contains(&s));
    // Tokens as of the record's last use: revoked since means ask (a `jti`
    // of "" matches no rule, so only the user, client and app rules count).
    let last_tokens = TokenKeys {
        jti: "",
        sid: None,
        sub: Some(&session.sub),
        client_id: &checked.client.id,
        iat: record.last_refreshed,
    };
    covered && state.denylist.is_revoked(&last_tokens, now).is_none()
}

/// `POST /oauth2/authorize`: the login form (`action=login`) or the consent
/// form (`decision=approve|deny`).
pub async fn authorize_post(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<OAuthForm, OAuthError>,
) -> Response {
    let Ok(form) = form else {
        return pages::error(StatusCode::BAD_REQUEST, "The form is malformed.");
    };
    let checked = match check(&state, &form).await {
        Outcome::Ok(checked) => checked,
        Outcome::Page(response) | Outcome::Redirect(response) => return response,
    };
    if form.get("action") == Some("login") {
        return login(&state, peer, &headers, &form, &checked).await;
    }
    let now = clock::now_secs();
    let Some(session) = state.session(&headers, now) else {
        return login_page(
            &state,
            &checked,
            StatusCode::UNAUTHORIZED,
            Some("Please sign in."),
        );
    };
    if !state.sessions.csrf_ok(&session, form.get("csrf")) {
        return pages::error(
            StatusCode::FORBIDDEN,
            "The form expired or was not sent by this page. Go back and try again.",
        );
    }
    match form.get("decision") {
        Some("approve") => approve(&state, &checked, &session).await,
        Some("deny") => error_redirect(
            &state,
            &checked.redirect_uri,
            checked.state.as_deref(),
            "access_denied",
            "the user denied the request",
        ),
        _ => pages::error(StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    }
}

/// The login post: verifies the user (rate limited per user and per peer),
/// starts a session, then shows the consent page.
async fn login(
    state: &AppState,
    peer: Peer,
    headers: &HeaderMap,
    form: &OAuthForm,
    checked: &Checked,
) -> Response {
    if !state.sessions.login_csrf_ok(headers, form.get("csrf")) {
        return login_page(
            state,
            checked,
            StatusCode::FORBIDDEN,
            Some("The form expired. Please sign in again."),
        );
    }
    match sign_in(state, peer, form).await {
        Ok(Some((session, cookie))) => {
            let mut response = consent_page(state, checked, &session);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Ok(None) => login_page(
            state,
            checked,
            StatusCode::UNAUTHORIZED,
            Some("Wrong username or password."),
        ),
        Err(OAuthError::SlowDown(_)) => login_page(
            state,
            checked,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed sign-ins. Wait a minute and try again."),
        ),
        Err(error) => error.into_response(),
    }
}

/// Verifies `username` and `password` of a form against `[[users]]`, with
/// the argon2 bounds and failure limits per user and per peer. `Ok(None)`
/// for wrong credentials.
pub(crate) async fn sign_in(
    state: &AppState,
    peer: Peer,
    form: &OAuthForm,
) -> Result<Option<(Session, HeaderValue)>, OAuthError> {
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return Ok(None);
    };
    if !state.user_password_ok(peer, username, password).await? {
        return Ok(None);
    }
    let started = state.sessions.start(username, clock::now_secs())?;
    Ok(Some(started))
}

/// Checks the parameters in RFC 6749 §4.1.2.1's order: client and redirect
/// URI first (page), then the rest (redirect).
async fn check(state: &AppState, params: &OAuthForm) -> Outcome {
    let client = match params.get("client_id") {
        Some(id) => match state.client(id).await {
            Ok(client) => client,
            Err(error) => return Outcome::Page(error.into_response()),
        },
        None => None,
    };
    let Some(client) = client else {
        return Outcome::Page(pages::error(
            StatusCode::BAD_REQUEST,
            "Unknown application (client_id).",
        ));
    };
    let redirect_uri = match params.get("redirect_uri") {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        _ => {
            return Outcome::Page(pages::error(
                StatusCode::BAD_REQUEST,
                "This application's redirect_uri is not registered.",
            ));
        }
    };
    let state_param = params.get("state").map(str::to_owned);
    let refuse = |error: &str, description: &str| {
        Outcome::Redirect(error_redirect(
            state,
            &redirect_uri,
            state_param.as_deref(),
            error,
            description,
        ))
    };
    if !client.grants.contains(&GrantType::AuthorizationCode) || state.client_disabled(&client) {
        return refuse(
            "unauthorized_client",
            "the client may not use the authorization code flow",
        );
    }
    if params.get("response_type") != Some("code") {
        return refuse("unsupported_response_type", "response_type must be code");
    }
    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, _) if client.is_public() => {
            return refuse(
                "invalid_request",
                "a public client must use PKCE (code_challenge, S256)",
            );
        }
        (None, _) => None,
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => Some(challenge.to_owned()),
        (Some(_), Some("S256")) => return refuse("invalid_request", "code_challenge is malformed"),
        (Some(_), _) => return refuse("invalid_request", "code_challenge_method must be S256"),
    };
    let scope = match granted_scope(params.get("scope"), &client.scopes, &client.default_scopes) {
        Ok(scope) => scope,
        Err(_) => {
            return refuse(
                "invalid_scope",
                "a requested scope is not allowed for this client",
            );
        }
    };
    let audience = match params.get("resource") {
        None => Vec::new(),
        Some(resource) if client.audience.contains(resource) => vec![resource.to_owned()],
        Some(_) => {
            return refuse(
                "invalid_target",
                "the resource is not one this client may access",
            );
        }
    };
    let hidden_fields = PARAMS
        .iter()
        .filter_map(|name| params.get(name).map(|value| hidden(name, value)))
        .collect::<String>();
    Outcome::Ok(Checked {
        client,
        redirect_uri,
        state: state_param,
        scope,
        code_challenge,
        audience,
        hidden: hidden_fields,
    })
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
pub(crate) fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The code, stored, and the redirect carrying it.
async fn approve(state: &AppState, checked: &Checked, session: &Session) -> Response {
    let issued = async {
        let code = crypto::random_secret()?;
        let grant = CodeGrant {
            client_id: checked.client.id.clone(),
            redirect_uri: checked.redirect_uri.clone(),
            code_challenge: checked.code_challenge.clone(),
            sub: session.sub.clone(),
            scope: checked.scope.clone(),
            audience: checked.audience.clone(),
            sid: crypto::random_id()?,
        };
        let json = serde_json::to_string(&grant).map_err(OAuthError::internal)?;
        state.store.put_code(&code, &json, CODE_TTL).await?;
        Ok::<String, OAuthError>(code)
    };
    match issued.await {
        Ok(code) => redirect(
            state,
            &checked.redirect_uri,
            &[("code", code.as_str())],
            checked.state.as_deref(),
        ),
        Err(error) => error.into_response(),
    }
}

fn login_page(
    state: &AppState,
    checked: &Checked,
    status: StatusCode,
    problem: Option<&str>,
) -> Response {
    login_form(state, status, "/oauth2/authorize", &checked.hidden, problem)
}

/// The login form posting to `action` (with `hidden_fields`), its CSRF
/// cookie set.
pub(crate) fn login_form(
    state: &AppState,
    status: StatusCode,
    action: &str,
    hidden_fields: &str,
    problem: Option<&str>,
) -> Response {
    let (cookie, csrf) = match state.sessions.login_csrf() {
        Ok(pair) => pair,
        Err(error) => return OAuthError::from(error).into_response(),
    };
    let mut response = pages::login(status, action, hidden_fields, &csrf, problem);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn consent_page(state: &AppState, checked: &Checked, session: &Session) -> Response {
    let scopes: String = checked
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| format!("<li><code>{}</code></li>", escape(s)))
        .collect();
    let scopes = if scopes.is_empty() {
        "<p>No particular permission: it will know who you are.</p>".to_owned()
    } else {
        format!("<ul>{scopes}</ul>")
    };
    // Where the permission goes, and, for an app that registered itself,
    // that nobody vouched for its name: a name alone can be anyone's.
    let destination = format!(
        "<p>If you allow it, you will be sent on to <strong>{}</strong>.</p>",
        escape(&redirect_origin(&checked.redirect_uri))
    );
    let unvetted = if checked.client.id.starts_with(super::register::ID_PREFIX) {
        "<p><strong>This app registered itself:</strong> its name is its own \
         claim, not checked by this server.</p>"
    } else {
        ""
    };
    let body = format!(
        "<h1>Allow {name}?</h1>\
         <p>Signed in as <strong>{user}</strong>. <strong>{name}</strong> asks to act on your behalf with:</p>\
         {scopes}{unvetted}{destination}<p>You can disconnect it at any time on your <a href=\"/account\">account page</a>.</p>\
         <form method=\"post\" action=\"/oauth2/authorize\">{hidden}{csrf}\
         <button type=\"submit\" name=\"decision\" value=\"approve\" autofocus>Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        name = escape(&checked.client.name),
        user = escape(&session.sub),
        hidden = checked.hidden,
        csrf = hidden("csrf", &state.sessions.csrf(session)),
    );
    pages::page(StatusCode::OK, "Allow access", &body)
}

/// The part of a redirect URI a user can judge: `scheme://host[:port]`,
/// or the scheme of a private-use URI (`com.example.app:`).
fn redirect_origin(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => uri
            .split(':')
            .next()
            .map_or_else(String::new, |s| format!("{s}:")),
    }
}

fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    state_param: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    redirect(
        state,
        redirect_uri,
        &[("error", error), ("error_description", description)],
        state_param,
    )
}

/// 303 to `redirect_uri` with `params`, `state` and `iss` (RFC 9207) in
/// its query.
fn redirect(
    state: &AppState,
    redirect_uri: &str,
    params: &[(&str, &str)],
    state_param: Option<&str>,
) -> Response {
    let mut query = String::new();
    let all = params
        .iter()
        .copied()
        .chain(state_param.map(|s| ("state", s)))
        .chain(std::iter::once(("iss", state.config.issuer.as_str())));
    for (name, value) in all {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(name);
        query.push('=');
        query.push_str(&pages::encode_component(value));
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{query}");
    let mut response = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Err(_) => return pages::error(StatusCode::BAD_REQUEST, "The redirect_uri cannot be used."),
    }
    super::no_store::mark(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_values_follow_rfc_7636() {
        assert!(is_pkce_value(&"a".repeat(43)));
        assert!(is_pkce_value(&"A-._~9".repeat(10)));
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(43))));
    }
}
