//! `/account`: the signed-in user's connected apps, each with Disconnect,
//! and "sign out everywhere".
//!
//! - Disconnect, for an app the user is connected to, writes
//!   `subclient:<sub>/<client_id>` issued-at-or-before now (every token the
//!   app holds for this user dies; connecting again later works) and
//!   forgets the app's record.
//! - Sign out everywhere writes `sub:<sub>` issued-at-or-before now, which
//!   also ends every session signed in until then (`AppState::session`).
//!
//! Every form posts a CSRF token bound to the session.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::OAuthError;
use super::form::OAuthForm;
use super::limit::Peer;
use super::pages::{self, escape, hidden};
use super::session::Session;
use crate::clock;
use crate::rule::{KeyKind, RevokedBefore, Rule, RuleKey};

/// `GET /account`: the apps, or the login form.
pub async fn account(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.session(&headers, clock::now_secs()) {
        Some(session) => apps_page(&state, &session).await,
        None => login_page(&state, StatusCode::OK, None),
    }
}

/// `POST /account/login`: signs in, then back to `/account`.
pub async fn login(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<OAuthForm, OAuthError>,
) -> Response {
    let Ok(form) = form else {
        return pages::error(StatusCode::BAD_REQUEST, "The form is malformed.");
    };
    if !state.sessions.login_csrf_ok(&headers, form.get("csrf")) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("The form expired. Please sign in again."),
        );
    }
    match super::authorize::sign_in(&state, peer, &form).await {
        Ok(Some((_, cookie))) => see_other("/account", Some(cookie)),
        Ok(None) => login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Wrong username or password."),
        ),
        Err(OAuthError::SlowDown(_)) => login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed sign-ins. Wait a minute and try again."),
        ),
        Err(error) => error.into_response(),
    }
}

/// `POST /account/apps/{client_id}/disconnect`.
pub async fn disconnect(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    form: Result<OAuthForm, OAuthError>,
) -> Response {
    let session = match signed_in_form(&state, &headers, form) {
        Ok(session) => session,
        Err(response) => return *response,
    };
    // Only an app the user is connected to: any other id would be a rule
    // anyone signed in could write at will (any length, any bytes).
    let connected = match state.store.grants(&session.sub, clock::now_secs()).await {
        Ok(grants) => grants.iter().any(|(id, _)| *id == client_id),
        Err(error) => return OAuthError::from(error).into_response(),
    };
    if !connected {
        return pages::error(
            StatusCode::NOT_FOUND,
            "That application is not connected to your account.",
        );
    }
    let key = RuleKey::SubClient {
        sub: session.sub.clone(),
        client: client_id.clone(),
    };
    let done = async {
        revoke_issued_until_now(&state, key, KeyKind::SubClient).await?;
        state.store.forget_grant(&session.sub, &client_id).await?;
        Ok::<(), OAuthError>(())
    };
    match done.await {
        Ok(()) => {
            tracing::info!(sub = %session.sub, %client_id, "app disconnected by its user");
            see_other("/account", None)
        }
        Err(error) => error.into_response(),
    }
}

/// `POST /account/signout-everywhere`.
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<OAuthForm, OAuthError>,
) -> Response {
    let session = match signed_in_form(&state, &headers, form) {
        Ok(session) => session,
        Err(response) => return *response,
    };
    match revoke_issued_until_now(&state, RuleKey::Sub(session.sub.clone()), KeyKind::Sub).await {
        Ok(()) => {
            tracing::info!(sub = %session.sub, "signed out everywhere by the user");
            see_other("/account", Some(state.sessions.end()))
        }
        Err(error) => error.into_response(),
    }
}

/// The session of a signed-in form whose CSRF token matches, or the page
/// that refuses it.
fn signed_in_form(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<OAuthForm, OAuthError>,
) -> Result<Session, Box<Response>> {
    let Ok(form) = form else {
        return Err(Box::new(pages::error(
            StatusCode::BAD_REQUEST,
            "The form is malformed.",
        )));
    };
    let Some(session) = state.session(headers, clock::now_secs()) else {
        return Err(Box::new(login_page(
            state,
            StatusCode::UNAUTHORIZED,
            Some("Please sign in."),
        )));
    };
    if !state.sessions.csrf_ok(&session, form.get("csrf")) {
        return Err(Box::new(pages::error(
            StatusCode::FORBIDDEN,
            "The form expired or was not sent by this page. Go back and try again.",
        )));
    }
    Ok(session)
}

/// Revokes every token of `key` issued until now; the rule lives as long as
/// the longest token it can affect.
async fn revoke_issued_until_now(
    state: &AppState,
    key: RuleKey,
    kind: KeyKind,
) -> Result<(), OAuthError> {
    let now = clock::now_secs();
    let rule = Rule {
        key,
        revoked_before: RevokedBefore::IssuedAtOrBefore(now),
        expires_at: now.saturating_add(state.max_token_lifetime),
    };
    state.store.revoke(rule).await?;
    state
        .metrics
        .revocations
        .with_label_values(&[kind.as_str(), "account"])
        .inc();
    Ok(())
}

async fn apps_page(state: &AppState, session: &Session) -> Response {
    let now = clock::now_secs();
    let apps = match state.store.grants(&session.sub, now).await {
        Ok(apps) => apps,
        Err(error) => return OAuthError::from(error).into_response(),
    };
    let csrf = hidden("csrf", &state.sessions.csrf(session));
    let mut rows = String::new();
    for (client_id, record) in &apps {
        let name = match state.client(client_id).await {
            Ok(Some(client)) => client.name.clone(),
            _ => client_id.clone(),
        };
        rows.push_str(&format!(
            "<tr><td>{name}</td><td>{scope}</td><td>{first}</td><td>{last}</td><td>\
             <form method=\"post\" action=\"/account/apps/{id}/disconnect\">{csrf}\
             <button type=\"submit\" aria-label=\"Disconnect {name}\">Disconnect</button></form></td></tr>",
            name = escape(&name),
            scope = escape(&record.scope),
            first = date(record.first_authorized),
            last = date(record.last_refreshed),
            id = escape(&pages::encode_component(client_id)),
        ));
    }
    let table = if apps.is_empty() {
        "<p>No application is connected to your account.</p>".to_owned()
    } else {
        format!(
            "<table><caption>Connected applications</caption><thead><tr><th scope=\"col\">Application</th>\
             <th scope=\"col\">Permissions</th><th scope=\"col\">Connected</th><th scope=\"col\">Last used</th>\
             <th scope=\"col\"><span hidden>Action</span></th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let body = format!(
        "<h1>Your account</h1><p>Signed in as <strong>{user}</strong>.</p>{table}\
         <h2>Everywhere</h2><p>Sign out of every application and device at once.</p>\
         <form method=\"post\" action=\"/account/signout-everywhere\">{csrf}\
         <button type=\"submit\">Sign out everywhere</button></form>",
        user = escape(&session.sub),
    );
    pages::page(StatusCode::OK, "Your account", &body)
}

fn login_page(state: &AppState, status: StatusCode, problem: Option<&str>) -> Response {
    super::authorize::login_form(state, status, "/account/login", "", problem)
}

fn see_other(location: &'static str, cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static(location));
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    super::no_store::mark(headers);
    response
}

/// `YYYY-MM-DD HH:MM UTC` for a time in seconds since the epoch.
fn date(secs: u64) -> String {
    let days = secs / 86_400;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(date(1_796_083_200), "2026-12-01 00:00 UTC");
        assert_eq!(date(951_782_400 + 3_660), "2000-02-29 01:01 UTC");
    }
}
