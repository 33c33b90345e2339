//! Third-party apps: the authorization code flow with PKCE through the
//! login and consent pages, the token exchange, and `/account`, driven by
//! a real HTTP client against a real issuer on 127.0.0.1 (cookies and
//! forms handled as a browser would, without JavaScript).

use std::collections::HashMap;

use base64::Engine;
use revokd::config::{ClientConfig, GrantType};
use revokd::signing::{SigningAlg, SigningKeys};
use serde_json::Value;

use crate::loopback;
use crate::redis_server::RedisServer;
use crate::support::browser::{Browser, form_fields, with};
use crate::support::{ALICE, Server, start_replicated_with, start_with};

/// A public app (an MCP client, say): no secret, PKCE required.
const APP: &str = "notes-app";
/// Its registered redirect URI (nothing listens there: the test reads the
/// redirect).
const REDIRECT: &str = "http://127.0.0.1:9/callback";

async fn issuer() -> Server {
    start_with(SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(), add_app).await
}

/// [`APP`]'s secret when [`add_confidential_app`] registers it.
const APP_SECRET: &str = "notes-app-secret";

/// Registers [`APP`].
fn add_app(c: &mut revokd::config::Config) {
    register_app(c, true);
}

/// Registers [`APP`] as a confidential client, with [`APP_SECRET`].
fn add_confidential_app(c: &mut revokd::config::Config) {
    register_app(c, false);
}

fn register_app(c: &mut revokd::config::Config, public: bool) {
    let secret_hash = if public {
        String::new()
    } else {
        let digest = ring::digest::digest(&ring::digest::SHA256, APP_SECRET.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    };
    c.clients.push(ClientConfig {
        id: APP.into(),
        secret_hash,
        name: Some("Notes <App>".into()),
        redirect_uris: vec![REDIRECT.into()],
        public,
        grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: vec!["read".into(), "write".into()],
        default_scopes: Some(vec!["read".into()]),
        audience: vec!["api".into(), "https://mcp.example".into()],
        access_ttl: None,
        refresh_ttl: None,
    });
}

/// A PKCE pair: verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = format!(
        "{}-verifier-{}",
        "v".repeat(40),
        revokd::clock::now_millis()
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    (verifier, challenge)
}

/// [`APP`]'s authorization request, for scopes read and write unless
/// `extra` (appended to the query) names its own `scope`.
fn authorize_url(server: &Server, challenge: &str, extra: &str) -> String {
    let scope = if extra.contains("&scope=") {
        ""
    } else {
        "&scope=read%20write"
    };
    format!(
        "{}/oauth2/authorize?response_type=code&client_id={APP}&redirect_uri={}{scope}\
         &state=st%26ate&code_challenge={challenge}&code_challenge_method=S256{extra}",
        server.base,
        urlencode(REDIRECT),
    )
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The query parameters of a redirect `Location`.
fn redirect_params(location: &str) -> HashMap<String, String> {
    assert!(location.starts_with(REDIRECT), "{location}");
    let query = location.split_once('?').unwrap().1;
    query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Login then consent as `user`: the code's redirect parameters.
async fn approve(
    browser: &mut Browser,
    server: &Server,
    user: (&str, &str),
    challenge: &str,
) -> HashMap<String, String> {
    approve_with(browser, server, user, challenge, "").await
}

/// [`approve`] with `extra` appended to the authorization request's query.
async fn approve_with(
    browser: &mut Browser,
    server: &Server,
    user: (&str, &str),
    challenge: &str,
    extra: &str,
) -> HashMap<String, String> {
    let (status, _, mut consent) = browser.get(&authorize_url(server, challenge, extra)).await;
    assert_eq!(status, 200);
    let url = format!("{}/oauth2/authorize", server.base);
    if consent.contains("name=\"password\"") {
        // Not signed in yet: the login page first.
        let login = consent;
        assert!(login.contains("name=\"username\""), "{login}");
        assert!(
            login.contains("<label for=\"username\">"),
            "labelled inputs"
        );
        let fields = with(
            form_fields(&login),
            &[
                ("action", "login"),
                ("username", user.0),
                ("password", user.1),
            ],
        );
        let (status, headers, page) = browser.post(&url, &fields).await;
        assert_eq!(status, 200, "{page}");
        assert!(headers["content-security-policy"].contains("frame-ancestors 'none'"));
        consent = page;
    }
    assert!(
        consent.contains("Notes &lt;App&gt;"),
        "the app's name, escaped: {consent}"
    );
    assert!(consent.contains("value=\"approve\"") && consent.contains("value=\"deny\""));
    let fields = with(form_fields(&consent), &[("decision", "approve")]);
    let (status, headers, _) = browser.post(&url, &fields).await;
    assert_eq!(status, 303);
    redirect_params(&headers["location"])
}

async fn exchange(server: &Server, code: &str, verifier: &str) -> (u16, Value) {
    exchange_with(server, code, verifier, &[]).await
}

/// [`exchange`] with `extra` form fields (a confidential app's secret).
async fn exchange_with(
    server: &Server,
    code: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", APP),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    form.extend_from_slice(extra);
    token_request(server, &form).await
}

/// A refresh of `refresh_token` by [`APP`], with `extra` form fields.
async fn refresh(server: &Server, refresh_token: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", APP),
        ("refresh_token", refresh_token),
    ];
    form.extend_from_slice(extra);
    token_request(server, &form).await
}

/// `POST /oauth2/token` with `form` (a confidential app's secret in it,
/// if any): the status and the JSON body.
async fn token_request(server: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let response = loopback::client(std::time::Duration::from_secs(10))
        .post(format!("{}/oauth2/token", server.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_user_connects_an_app_with_pkce_and_a_reused_code_revokes_what_it_issued() {
    let server = issuer().await;
    let (verifier, challenge) = pkce();
    let mut browser = Browser::new();
    let params = approve(&mut browser, &server, ALICE, &challenge).await;
    assert_eq!(params["state"], "st&ate");
    assert_eq!(params["iss"], server.base, "RFC 9207");

    let (status, tokens) = exchange(&server, &params["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(tokens["scope"], "read write");
    let introspected = server.introspect(access).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["sub"], "alice");
    assert_eq!(introspected["client_id"], APP);

    // The code again: refused, and what it issued dies with it.
    let (status, body) = exchange(&server, &params["code"], &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        !server.active(access).await,
        "the session the code started is revoked"
    );
}

#[tokio::test]
async fn a_grant_narrowed_to_one_resource_stays_narrowed_through_its_refreshes() {
    const MCP: &str = "https://mcp.example";
    let server = issuer().await;
    let (verifier, challenge) = pkce();
    let mut browser = Browser::new();
    let extra = format!("&resource={}", urlencode(MCP));
    let params = approve_with(&mut browser, &server, ALICE, &challenge, &extra).await;
    let (status, tokens) = exchange(&server, &params["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(server.introspect(access).await["aud"], MCP);

    // The refresh's access token is for the granted resource only, not for
    // every audience of the client (api too).
    let (status, refreshed) =
        refresh(&server, tokens["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(status, 200, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(server.introspect(access).await["aud"], MCP);

    // Asking the refresh for the client's other audience: invalid_target,
    // and the refresh token was not spent (nothing claimed it).
    let rotated = refreshed["refresh_token"].as_str().unwrap();
    let (status, body) = refresh(&server, rotated, &[("resource", "api")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target")),
        "{body}"
    );
    let (status, again) = refresh(&server, rotated, &[("resource", MCP)]).await;
    assert_eq!(status, 200, "{again}");
    let access = again["access_token"].as_str().unwrap();
    assert_eq!(server.introspect(access).await["aud"], MCP);
    assert_eq!(server.introspect(access).await["active"], true);

    // A grant that named no resource still gets the whole audience, and a
    // refresh may narrow it to one of them.
    let (verifier, challenge) = pkce();
    let params = approve(&mut browser, &server, ALICE, &challenge).await;
    let (_, tokens) = exchange(&server, &params["code"], &verifier).await;
    let whole = server
        .introspect(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(whole["aud"], serde_json::json!(["api", MCP]));
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, narrowed) = refresh(&server, refresh_token, &[("resource", "api")]).await;
    assert_eq!(status, 200, "{narrowed}");
    let access = narrowed["access_token"].as_str().unwrap();
    assert_eq!(server.introspect(access).await["aud"], "api");
    let rotated = narrowed["refresh_token"].as_str().unwrap();
    let (status, body) = refresh(&server, rotated, &[("resource", "https://other")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
}

#[tokio::test]
async fn a_connected_confidential_app_gets_its_code_without_asking_until_it_asks_more_or_is_revoked()
 {
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let server = start_with(keys, add_confidential_app).await;
    let secret = [("client_secret", APP_SECRET)];
    let mut browser = Browser::new();
    // Connected with read only.
    let (verifier, challenge) = pkce();
    let params = approve_with(&mut browser, &server, ALICE, &challenge, "&scope=read").await;
    let (status, _) = exchange_with(&server, &params["code"], &verifier, &secret).await;
    assert_eq!(status, 200);

    // The same scope again: the code at once, no page.
    let (verifier, challenge) = pkce();
    let url = authorize_url(&server, &challenge, "&scope=read");
    let (status, headers, _) = browser.get(&url).await;
    assert_eq!(status, 303, "remembered consent redirects at once");
    let params = redirect_params(&headers["location"]);
    assert_eq!(
        (params["state"].as_str(), params["iss"].as_str()),
        ("st&ate", server.base.as_str())
    );
    let (status, tokens) = exchange_with(&server, &params["code"], &verifier, &secret).await;
    assert_eq!((status, tokens["scope"].as_str()), (200, Some("read")));
    // prompt=consent asks anyway.
    let (status, _, page) = browser
        .get(&authorize_url(
            &server,
            &challenge,
            "&scope=read&prompt=consent",
        ))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("value=\"approve\""), "{page}");

    // Asking for write too: the consent page; approved, read write is
    // remembered in turn.
    let (verifier, challenge) = pkce();
    let (status, _, page) = browser.get(&authorize_url(&server, &challenge, "")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("value=\"approve\""),
        "more scope asks: {page}"
    );
    let params = approve(&mut browser, &server, ALICE, &challenge).await;
    let (status, _) = exchange_with(&server, &params["code"], &verifier, &secret).await;
    assert_eq!(status, 200);
    let (_, challenge) = pkce();
    let (status, _, _) = browser.get(&authorize_url(&server, &challenge, "")).await;
    assert_eq!(status, 303);

    // An administrator revokes alice's tokens for the app: it asks again.
    let admin = server.admin_token().await;
    let key = format!("subclient:alice/{APP}");
    let resp = server
        .admin_post(&admin, &serde_json::json!({ "key": key }))
        .await;
    assert_eq!(resp.status(), 200);
    let (status, _, page) = browser.get(&authorize_url(&server, &challenge, "")).await;
    assert_eq!(status, 200, "a revocation since means asking");
    assert!(page.contains("value=\"approve\""), "{page}");
    // So does a disconnect on /account (which forgets the app). The rule
    // above revokes what was issued until its second: approve after it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (verifier, challenge) = pkce();
    let params = approve(&mut browser, &server, ALICE, &challenge).await;
    let (status, _) = exchange_with(&server, &params["code"], &verifier, &secret).await;
    assert_eq!(status, 200);
    let (_, _, account) = browser.get(&format!("{}/account", server.base)).await;
    let at = account.find("/disconnect").unwrap();
    let form = &account[account[..at].rfind("<form").unwrap()..];
    let disconnect = format!("{}/account/apps/{APP}/disconnect", server.base);
    let (status, _, _) = browser.post(&disconnect, &form_fields(form)).await;
    assert_eq!(status, 303);
    let (status, _, _) = browser.get(&authorize_url(&server, &challenge, "")).await;
    assert_eq!(status, 200, "a disconnected app asks again");
}

#[tokio::test]
async fn a_public_app_is_asked_every_time_even_when_connected() {
    // RFC 8252 §8.6: anyone can send a public client's id, so a code issued
    // without the user would go to whoever receives its redirect.
    let server = issuer().await;
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce();
    let params = approve(&mut browser, &server, ALICE, &challenge).await;
    let (status, _) = exchange(&server, &params["code"], &verifier).await;
    assert_eq!(status, 200);
    let (_, challenge) = pkce();
    let (status, _, page) = browser.get(&authorize_url(&server, &challenge, "")).await;
    assert_eq!(status, 200, "the consent page again");
    assert!(page.contains("value=\"approve\""), "{page}");
}

/// [`APP`] and a second public app with the same redirect URI.
fn add_two_apps(c: &mut revokd::config::Config) {
    add_app(c);
    let mut other = c.clients.last().unwrap().clone();
    other.id = OTHER_APP.into();
    c.clients.push(other);
}

/// The second app of [`add_two_apps`].
const OTHER_APP: &str = "other-app";

/// Whoever presents a code with the wrong verifier, no verifier, another
/// redirect URI or as another client gets `invalid_grant` and leaves the
/// code as it was: the right presenter still exchanges it, and a spent code
/// presented by the wrong one does not end the session.
async fn only_the_issued_presenter_spends_a_code(server: &Server) {
    let (verifier, challenge) = pkce();
    let mut browser = Browser::new();
    let params = approve(&mut browser, server, ALICE, &challenge).await;
    let code = params["code"].as_str();
    let wrong = format!("{verifier}x");
    let attempts: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "code_verifier does not match",
            vec![
                ("client_id", APP),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &wrong),
            ],
        ),
        (
            "code_verifier is missing or malformed",
            vec![("client_id", APP), ("redirect_uri", REDIRECT)],
        ),
        (
            "redirect_uri does not match the authorization request",
            vec![
                ("client_id", APP),
                ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
                ("code_verifier", &verifier),
            ],
        ),
        (
            "invalid authorization code",
            vec![
                ("client_id", OTHER_APP),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ],
        ),
    ];
    for (expected, fields) in &attempts {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        form.extend_from_slice(fields);
        let (status, body) = token_request(server, &form).await;
        assert_eq!(
            (
                status,
                body["error"].as_str(),
                body["error_description"].as_str()
            ),
            (400, Some("invalid_grant"), Some(*expected)),
            "{fields:?}"
        );
    }
    let (status, tokens) = exchange(server, code, &verifier).await;
    assert_eq!(status, 200, "the code is still the app's: {tokens}");
    let access = tokens["access_token"].as_str().unwrap();

    // Spent now. Someone who saw it, without the verifier or as another
    // client, cannot end the session with it ...
    for (_, fields) in &attempts {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        form.extend_from_slice(fields);
        assert_eq!(token_request(server, &form).await.0, 400);
    }
    assert!(
        server.active(access).await,
        "the session survives presentations by others"
    );
    // ... but the app presenting it again is reuse, and revokes it.
    let (status, body) = exchange(server, code, &verifier).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error_description"],
        "authorization code already used: its tokens are revoked"
    );
    assert!(!server.active(access).await);

    let (status, body) = exchange(server, "never-issued", &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn only_the_issued_presenter_spends_a_code_in_memory() {
    let server = start_with(
        SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(),
        add_two_apps,
    )
    .await;
    only_the_issued_presenter_spends_a_code(&server).await;
}

#[tokio::test]
async fn only_the_issued_presenter_spends_a_code_on_redis() {
    let redis = RedisServer::start();
    let (server, _replication) = start_replicated_with(
        "https://auth.apps.test",
        SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(),
        |c| {
            add_two_apps(c);
            c.store.redis_url = Some(redis.url());
        },
    )
    .await;
    only_the_issued_presenter_spends_a_code(&server).await;
}

#[tokio::test]
async fn requests_refused_before_the_redirect_is_trusted_get_a_page_and_after_a_redirect() {
    let server = issuer().await;
    let mut browser = Browser::new();
    let (_, challenge) = pkce();
    // Unknown client, unregistered redirect URI: a page, never a redirect.
    for url in [
        format!(
            "{}/oauth2/authorize?response_type=code&client_id=nobody&redirect_uri={}",
            server.base,
            urlencode(REDIRECT)
        ),
        format!(
            "{}/oauth2/authorize?response_type=code&client_id={APP}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
            server.base,
            urlencode("https://evil.example/callback")
        ),
    ] {
        let (status, headers, page) = browser.get(&url).await;
        assert_eq!(status, 400, "{url}");
        assert!(!headers.contains_key("location"), "{url}");
        assert!(page.contains("role=\"alert\""), "{page}");
    }
    // A public client without PKCE, plain PKCE, a scope it may not have, a
    // resource it may not reach: an error redirect with the state and iss.
    let base = format!(
        "{}/oauth2/authorize?response_type=code&client_id={APP}&redirect_uri={}&state=s1",
        server.base,
        urlencode(REDIRECT)
    );
    for (extra, error) in [
        (String::new(), "invalid_request"),
        (
            format!("&code_challenge={challenge}&code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            format!("&code_challenge={challenge}&code_challenge_method=S256&scope=admin"),
            "invalid_scope",
        ),
        (
            format!(
                "&code_challenge={challenge}&code_challenge_method=S256&resource=https%3A%2F%2Fother"
            ),
            "invalid_target",
        ),
    ] {
        let (status, headers, _) = browser.get(&format!("{base}{extra}")).await;
        assert_eq!(status, 303, "{extra}");
        let params = redirect_params(&headers["location"]);
        assert_eq!(params["error"], error, "{extra}");
        assert_eq!(params["state"], "s1");
        assert_eq!(params["iss"], server.base);
    }
}

#[tokio::test]
async fn forms_without_their_csrf_token_change_nothing_and_deny_is_access_denied() {
    let server = issuer().await;
    let (_, challenge) = pkce();
    let mut browser = Browser::new();
    let url = format!("{}/oauth2/authorize", server.base);
    let (_, _, login) = browser.get(&authorize_url(&server, &challenge, "")).await;
    // A login post without the token (a cross-site form): refused.
    let fields: Vec<_> = form_fields(&login)
        .into_iter()
        .filter(|(k, _)| k != "csrf")
        .collect();
    let fields = with(
        fields,
        &[
            ("action", "login"),
            ("username", ALICE.0),
            ("password", ALICE.1),
        ],
    );
    let (status, _, _) = browser.post(&url, &fields).await;
    assert_eq!(status, 403);
    assert!(!browser.cookies.contains_key("revokd_session"));
    // Wrong password: the login page again, no session.
    let (_, _, login) = browser.get(&authorize_url(&server, &challenge, "")).await;
    let fields = with(
        form_fields(&login),
        &[
            ("action", "login"),
            ("username", ALICE.0),
            ("password", "wrong"),
        ],
    );
    let (status, _, page) = browser.post(&url, &fields).await;
    assert_eq!(status, 401);
    assert!(page.contains("Wrong username or password"));
    assert!(!browser.cookies.contains_key("revokd_session"));
    // Signed in; a consent post without the token is refused, deny is a
    // redirect with access_denied.
    let fields = with(
        form_fields(&page),
        &[
            ("action", "login"),
            ("username", ALICE.0),
            ("password", ALICE.1),
        ],
    );
    let (status, _, consent) = browser.post(&url, &fields).await;
    assert_eq!(status, 200);
    let no_csrf: Vec<_> = form_fields(&consent)
        .into_iter()
        .filter(|(k, _)| k != "csrf")
        .collect();
    let (status, headers, _) = browser
        .post(&url, &with(no_csrf, &[("decision", "approve")]))
        .await;
    assert_eq!(status, 403);
    assert!(!headers.contains_key("location"));
    let (status, headers, _) = browser
        .post(&url, &with(form_fields(&consent), &[("decision", "deny")]))
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        redirect_params(&headers["location"])["error"],
        "access_denied"
    );
}

#[tokio::test]
async fn the_account_page_lists_the_app_and_disconnect_revokes_only_that_users_tokens() {
    let server = issuer().await;
    let (verifier, challenge) = pkce();
    let mut alice = Browser::new();
    let params = approve(&mut alice, &server, ALICE, &challenge).await;
    let (_, alice_tokens) = exchange(&server, &params["code"], &verifier).await;
    let mut bob = Browser::new();
    let params = approve(&mut bob, &server, ("bob", "bob-password"), &challenge).await;
    let (_, bob_tokens) = exchange(&server, &params["code"], &verifier).await;
    let alice_access = alice_tokens["access_token"].as_str().unwrap();
    let bob_access = bob_tokens["access_token"].as_str().unwrap();

    // The admin API lists the same, by user and by client.
    assert_eq!(admin_list(&server, "users/alice/apps").await, [APP]);
    assert_eq!(
        admin_list(&server, &format!("clients/{APP}/users")).await,
        ["alice", "bob"]
    );

    let account = format!("{}/account", server.base);
    let (status, _, page) = alice.get(&account).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Notes &lt;App&gt;") && page.contains("read write"),
        "{page}"
    );
    let disconnect = page
        .find(&format!("/account/apps/{APP}/disconnect"))
        .expect("a Disconnect form");
    let form = &page[page[..disconnect].rfind("<form").unwrap()..];
    let (status, headers, _) = alice
        .post(
            &format!("{}/account/apps/{APP}/disconnect", server.base),
            &form_fields(form),
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/account");
    assert!(
        !server.active(alice_access).await,
        "alice's token for the app is revoked"
    );
    assert!(server.active(bob_access).await, "bob's grant is untouched");
    let (_, _, page) = alice.get(&account).await;
    assert!(page.contains("No application is connected"), "{page}");
    assert!(admin_list(&server, "users/alice/apps").await.is_empty());
    assert_eq!(
        admin_list(&server, &format!("clients/{APP}/users")).await,
        ["bob"]
    );

    // Alice can connect the app again later (the rule covers tokens issued
    // up to the second of the disconnect).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let params = approve(&mut alice, &server, ALICE, &challenge).await;
    let (status, tokens) = exchange(&server, &params["code"], &verifier).await;
    assert_eq!(status, 200);
    assert!(
        server
            .active(tokens["access_token"].as_str().unwrap())
            .await
    );

    // A forged disconnect (no token) for bob's app changes nothing.
    let (status, _, _) = bob
        .post(
            &format!("{}/account/apps/{APP}/disconnect", server.base),
            &[],
        )
        .await;
    assert_eq!(status, 403);
    assert!(server.active(bob_access).await);

    // A disconnect names an app the user is connected to, or writes
    // nothing: no rule for any id (a control character, 3000 bytes) a
    // signed-in user makes up.
    let account_rules = || async {
        let text = server.metrics().await;
        text.lines()
            .find(|l| {
                l.starts_with("revokd_revocations_total")
                    && l.contains("kind=\"subclient\"")
                    && l.contains("source=\"account\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    let before = account_rules().await;
    let (_, _, page) = bob.get(&account).await;
    let at = page.find("/disconnect").unwrap();
    let fields = form_fields(&page[page[..at].rfind("<form").unwrap()..]);
    for made_up in [
        "%01x".to_owned(),
        "a%0Ab".to_owned(),
        "x".repeat(3000),
        "unknown-app".to_owned(),
    ] {
        let (status, _, _) = bob
            .post(
                &format!("{}/account/apps/{made_up}/disconnect", server.base),
                &fields,
            )
            .await;
        assert_eq!(status, 404, "{made_up:.20}");
    }
    assert_eq!(account_rules().await, before, "no rule written");
    assert!(server.active(bob_access).await);

    // Sign out everywhere: every token of bob dies, and the session ends,
    // here and in his other browser (and for any copy of the cookie).
    let mut bob_elsewhere = Browser::new();
    approve(
        &mut bob_elsewhere,
        &server,
        ("bob", "bob-password"),
        &challenge,
    )
    .await;
    let stolen = bob.cookies.clone();
    let (_, _, page) = bob_elsewhere.get(&account).await;
    assert!(page.contains("Signed in as"), "{page}");
    let (_, _, page) = bob.get(&account).await;
    let at = page.find("/account/signout-everywhere").unwrap();
    let form = &page[page[..at].rfind("<form").unwrap()..];
    let (status, _, _) = bob
        .post(
            &format!("{}/account/signout-everywhere", server.base),
            &form_fields(form),
        )
        .await;
    assert_eq!(status, 303);
    assert!(!server.active(bob_access).await);
    assert!(!bob.cookies.contains_key("revokd_session"));
    let (_, _, page) = bob_elsewhere.get(&account).await;
    assert!(
        !page.contains("Signed in as"),
        "the other browser is signed out: {page}"
    );
    bob.cookies = stolen;
    let (_, _, page) = bob.get(&account).await;
    assert!(
        !page.contains("Signed in as"),
        "so is a copy of the cookie: {page}"
    );
}

#[tokio::test]
async fn the_metadata_lists_the_authorization_endpoint_and_pkce() {
    let server = issuer().await;
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{}/oauth2/authorize", server.base)
    );
    assert_eq!(metadata["code_challenge_methods_supported"][0], "S256");
    assert_eq!(metadata["response_types_supported"][0], "code");
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "authorization_code")
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
}

/// Two issuers on one Redis: a code issued at A is spent at B, spent again
/// at A (reuse, the session revoked), the app listed and disconnected at B
/// with A's session cookie: codes, records and sessions are shared.
#[tokio::test]
async fn codes_grants_and_sessions_are_shared_by_issuers_on_one_redis() {
    let redis = RedisServer::start();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let iss = "https://auth.apps.test";
    let with_redis = |c: &mut revokd::config::Config| {
        add_app(c);
        c.store.redis_url = Some(redis.url());
        c.registration.enabled = true;
    };
    let (a, _ra) = start_replicated_with(iss, keys.clone(), with_redis).await;
    let (b, _rb) = start_replicated_with(iss, keys, with_redis).await;
    let (verifier, challenge) = pkce();
    let mut browser = Browser::new();
    let params = approve(&mut browser, &a, ALICE, &challenge).await;
    assert_eq!(params["iss"], iss);
    let (status, tokens) = exchange(&b, &params["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(a.active(access).await && b.active(access).await);
    let (status, _) = exchange(&a, &params["code"], &verifier).await;
    assert_eq!(status, 400);
    assert!(
        !a.active(access).await && !b.active(access).await,
        "reuse revoked it everywhere"
    );

    let params = approve(&mut browser, &a, ALICE, &challenge).await;
    let (_, tokens) = exchange(&a, &params["code"], &verifier).await;
    let access = tokens["access_token"].as_str().unwrap();
    // The refresh touches the record at the other issuer.
    let (status, _) = refresh(&b, tokens["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(status, 200);
    let (status, _, page) = browser.get(&format!("{}/account", b.base)).await;
    assert_eq!(status, 200, "A's session is good at B");
    assert!(page.contains("Notes &lt;App&gt;"), "{page}");
    let at = page.find("/disconnect").unwrap();
    let form = &page[page[..at].rfind("<form").unwrap()..];
    let (status, _, _) = browser
        .post(
            &format!("{}/account/apps/{APP}/disconnect", b.base),
            &form_fields(form),
        )
        .await;
    assert_eq!(status, 303);
    assert!(!a.active(access).await, "disconnected at B, refused at A");
    let (_, _, page) = browser.get(&format!("{}/account", a.base)).await;
    assert!(page.contains("No application is connected"), "{page}");
    assert!(
        admin_list(&a, &format!("clients/{APP}/users"))
            .await
            .is_empty()
    );

    // A client registered at A is known at B.
    let registered: Value = loopback::client(std::time::Duration::from_secs(10))
        .post(format!("{}/oauth2/register", a.base))
        .json(&serde_json::json!({"redirect_uris": [REDIRECT], "client_name": "Shared"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered["client_id"].as_str().unwrap();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id={id}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        b.base,
        urlencode(REDIRECT)
    );
    let (status, _, consent) = browser.get(&url).await;
    assert_eq!(status, 200);
    assert!(consent.contains("Allow Shared?"), "{consent}");
}

/// RFC 7591: a public client registers itself, then connects like a
/// configured one; what registration does not offer is refused.
#[tokio::test]
async fn a_client_registers_itself_then_connects() {
    let server = start_with(SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(), |c| {
        c.registration.enabled = true;
        c.registration.scopes = vec!["read".into()];
        c.registration.audience = vec!["api".into()];
    })
    .await;
    let http = loopback::client(std::time::Duration::from_secs(10));
    let register = |body: Value| {
        http.post(format!("{}/oauth2/register", server.base))
            .json(&body)
            .send()
    };
    for (body, error) in [
        (
            serde_json::json!({"client_name": "x"}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": ["https://a.test/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!({"redirect_uris": [REDIRECT], "scope": "read revokd:admin"}),
            "invalid_client_metadata",
        ),
    ] {
        let answer = register(body.clone()).await.unwrap();
        assert_eq!(answer.status(), 400, "{body}");
        let answer: Value = answer.json().await.unwrap();
        assert_eq!(answer["error"], error, "{body}");
    }
    let answer = register(serde_json::json!({
        "redirect_uris": [REDIRECT],
        "client_name": "Registered \u{202e}<Tool>\u{200b}",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }))
    .await
    .unwrap();
    assert_eq!(answer.status(), 201);
    let registered: Value = answer.json().await.unwrap();
    let id = registered["client_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("dyn-"), "{registered}");
    assert_eq!(registered["token_endpoint_auth_method"], "none");
    assert_eq!(registered["scope"], "read");

    let (verifier, challenge) = pkce();
    let mut browser = Browser::new();
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id={id}&redirect_uri={}&state=s&code_challenge={challenge}&code_challenge_method=S256",
        server.base,
        urlencode(REDIRECT)
    );
    let (status, _, login) = browser.get(&url).await;
    assert_eq!(status, 200, "{login}");
    let authorize = format!("{}/oauth2/authorize", server.base);
    let fields = with(
        form_fields(&login),
        &[
            ("action", "login"),
            ("username", ALICE.0),
            ("password", ALICE.1),
        ],
    );
    let (_, _, consent) = browser.post(&authorize, &fields).await;
    assert!(
        consent.contains("Registered &lt;Tool&gt;"),
        "the name, without its bidi override and zero-width space: {consent}"
    );
    assert!(consent.contains("This app registered itself"), "{consent}");
    assert!(
        consent.contains("sent on to <strong>http://127.0.0.1:9</strong>"),
        "the consent page names where the permission goes: {consent}"
    );
    let (status, headers, _) = browser
        .post(
            &authorize,
            &with(form_fields(&consent), &[("decision", "approve")]),
        )
        .await;
    assert_eq!(status, 303);
    let code = redirect_params(&headers["location"])["code"].clone();
    let tokens: Value = http
        .post(format!("{}/oauth2/token", server.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"]
        .as_str()
        .expect("tokens for the registered client");
    assert!(server.active(access).await);
    // A registered client is public: it cannot introspect.
    let introspect = http
        .post(format!("{}/oauth2/introspect", server.base))
        .form(&[("client_id", id.as_str()), ("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(introspect.status(), 401);
}

/// `POST /oauth2/register` with a minimal valid body: status, headers, JSON.
async fn register_one(server: &Server) -> (u16, reqwest::header::HeaderMap, Value) {
    let answer = loopback::client(std::time::Duration::from_secs(10))
        .post(format!("{}/oauth2/register", server.base))
        .json(&serde_json::json!({"redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    (status, headers, answer.json().await.unwrap())
}

/// One host registers a few clients an hour, not thousands a second.
#[tokio::test]
async fn one_peer_registers_only_its_hourly_share() {
    let server = start_with(SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap(), |c| {
        c.registration.enabled = true;
        c.registration.per_peer_per_hour = 3;
    })
    .await;
    for i in 0..3 {
        let (status, _, body) = register_one(&server).await;
        assert_eq!(status, 201, "registration #{i}: {body}");
    }
    let (status, headers, body) = register_one(&server).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "slow_down");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1..=1200).contains(&wait),
        "one registration back in 20 min: {wait}"
    );
}

/// The registry holds `registration.max_clients` at most, counted across
/// every issuer on one Redis; past it a 503 that keeps nothing, until
/// registrations expire.
#[tokio::test]
async fn the_client_registry_is_capped_across_issuers_until_registrations_expire() {
    let redis = RedisServer::start();
    let keys = SigningKeys::ephemeral(SigningAlg::EdDSA).unwrap();
    let capped = |c: &mut revokd::config::Config| {
        c.store.redis_url = Some(redis.url());
        c.registration.enabled = true;
        c.registration.max_clients = 2;
        c.registration.client_ttl = std::time::Duration::from_secs(2);
    };
    let (a, _ra) = start_replicated_with("https://auth.apps.test", keys.clone(), capped).await;
    let (b, _rb) = start_replicated_with("https://auth.apps.test", keys, capped).await;
    assert_eq!(register_one(&a).await.0, 201);
    assert_eq!(register_one(&b).await.0, 201);
    for server in [&a, &b] {
        let (status, headers, body) = register_one(server).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable");
        assert_eq!(headers["retry-after"], "60");
    }
    let mut con = crate::redis_server::connect(redis.port()).unwrap();
    let kept: Vec<String> = redis::cmd("KEYS")
        .arg("{revokd}:client:*")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        kept.len(),
        2,
        "the refused registrations kept nothing: {kept:?}"
    );

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, _, body) = register_one(&b).await;
    assert_eq!(status, 201, "room again once they expired: {body}");
}

#[tokio::test]
async fn registration_is_off_by_default() {
    let server = issuer().await;
    assert_eq!(register_one(&server).await.0, 404);
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(metadata.get("registration_endpoint").is_none());
}

/// The admin API's listing at `/admin/<path>`: the ids it names.
async fn admin_list(server: &Server, path: &str) -> Vec<String> {
    let token = server.admin_token().await;
    let answer = loopback::client(std::time::Duration::from_secs(10))
        .get(format!("{}/admin/{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
    let list: Value = answer.json().await.unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert!(
                entry["first_authorized"].is_u64() && entry["scope"].is_string(),
                "{entry}"
            );
            entry
                .get("client_id")
                .or(entry.get("sub"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}
