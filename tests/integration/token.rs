//! `/oauth2/token`: grants, client authentication, scopes, rotation, reuse.

use crate::support::{self, ALICE, ARGON, MACHINE, ODD, OTHER, WEB, decode_parts};
use serde_json::Value;

#[tokio::test]
async fn client_credentials_issues_an_rfc9068_access_token_and_no_refresh_token() {
    let server = support::start().await;
    let resp = server
        .post_form(
            "/oauth2/token",
            Some(WEB),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "read", "the client's default scopes");
    assert!(body.get("refresh_token").is_none(), "RFC 6749 §4.4.3");
    let (header, claims) = decode_parts(body["access_token"].as_str().unwrap());
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], server.state.keys.active().kid());
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "aud",
            "client_id",
            "exp",
            "iat",
            "iss",
            "jti",
            "scope",
            "sid",
            "sub"
        ]
    );
    assert_eq!(claims["iss"], server.base.as_str());
    assert_eq!(claims["sub"], "web");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["aud"], "api");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 22);
    assert!(
        jti.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(server.active(body["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn a_resource_names_one_of_the_clients_audiences_or_is_invalid_target() {
    let server = support::start().await;
    // RFC 8707 §2.2 at the token endpoint, for every grant.
    for grant in [
        &[("grant_type", "client_credentials")][..],
        &[
            ("grant_type", "password"),
            ("username", ALICE.0),
            ("password", ALICE.1),
        ],
    ] {
        let with = |resource| [grant, &[("resource", resource)]].concat();
        let body = server.token_ok(WEB, &with("api")).await;
        let (_, claims) = decode_parts(body["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], "api", "{grant:?}");
        let resp = server
            .post_form("/oauth2/token", Some(WEB), &with("https://elsewhere"))
            .await;
        assert_eq!(resp.status(), 400, "{grant:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_target", "{grant:?}");
    }
}

#[tokio::test]
async fn client_secret_post_authenticates() {
    let server = support::start().await;
    let resp = server
        .post_form(
            "/oauth2/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", WEB.0),
                ("client_secret", WEB.1),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn two_authentication_methods_are_an_invalid_request() {
    let server = support::start().await;
    let resp = server
        .post_form(
            "/oauth2/token",
            Some(WEB),
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", WEB.1),
            ],
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn failed_client_authentication_is_401_with_www_authenticate() {
    let server = support::start().await;
    for client in [Some((WEB.0, "wrong")), Some(("nobody", "x")), None] {
        let resp = server
            .post_form(
                "/oauth2/token",
                client,
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(resp.status(), 401, "{client:?}");
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm="),
        );
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
}

#[tokio::test]
async fn malformed_basic_headers_are_401_invalid_client() {
    let server = support::start().await;
    for header in [
        "Basic !!!notbase64",
        "Basic",
        "Basic bm9jb2xvbg==",
        "Bearer abc",
        "Basic YTolenp6",
    ] {
        let resp = server
            .http
            .post(format!("{}/oauth2/token", server.base))
            .header("authorization", header)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{header}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
}

#[tokio::test]
async fn basic_credentials_are_form_urldecoded() {
    use base64::Engine;
    let server = support::start().await;
    let enc = |s: &str| {
        s.replace('%', "%25")
            .replace(':', "%3A")
            .replace('&', "%26")
            .replace('+', "%2B")
            .replace(' ', "+")
    };
    let raw = format!("{}:{}", enc(ODD.0), enc(ODD.1));
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    );
    let resp = server
        .http
        .post(format!("{}/oauth2/token", server.base))
        .header("authorization", header)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let (_, claims) = decode_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], ODD.0);
}

/// Runs `work` and counts the argon2 verifications that started meanwhile:
/// the rises of `revokd_argon2_running` from 0, sampled by a thread of its
/// own every 100 µs (a verification of the hash below takes far longer).
async fn argon2_runs<T>(server: &support::Server, work: impl Future<Output = T>) -> (T, usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let running = server.state.metrics.argon2_running.clone();
    assert_eq!(
        running.get(),
        0,
        "an argon2 verification is already running"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let (mut rises, mut was_running) = (0, false);
            loop {
                // Read the flag first, so the last sample follows `work`.
                let last = stop.load(Ordering::SeqCst);
                let now_running = running.get() > 0;
                if now_running && !was_running {
                    rises += 1;
                }
                was_running = now_running;
                if last {
                    return rises;
                }
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
    });
    let out = work.await;
    stop.store(true, Ordering::SeqCst);
    (out, sampler.join().unwrap())
}

#[tokio::test]
async fn argon2_client_secrets_verify_and_repeat_from_the_cache() {
    let keys = revokd::signing::SigningKeys::ephemeral(revokd::signing::SigningAlg::EdDSA).unwrap();
    let server = support::start_with(keys, |c| {
        // Slow enough to be seen running (8 MiB, one pass).
        let argon = c.clients.iter_mut().find(|c| c.id == ARGON.0).unwrap();
        argon.secret_hash = crate::config::argon2_hash(ARGON.1, 8 * 1024, 1);
        // One failed verification per client id: a wrong secret verified a
        // second time instead of answered from the cache would be 429.
        c.limits.argon2_failures = 1;
    })
    .await;
    let attempt = |secret: &'static str| {
        let server = &server;
        async move {
            server
                .post_form(
                    "/oauth2/token",
                    Some((ARGON.0, secret)),
                    &[("grant_type", "client_credentials")],
                )
                .await
                .status()
                .as_u16()
        }
    };
    let repeat = |secret: &'static str, times: usize| async move {
        let mut statuses = Vec::new();
        for _ in 0..times {
            statuses.push(attempt(secret).await);
        }
        statuses
    };

    // The first check of a secret runs argon2; every repeat is answered from
    // the cache, without argon2 work.
    let (status, runs) = argon2_runs(&server, attempt(ARGON.1)).await;
    assert_eq!((status, runs), (200, 1), "(status, verifications)");
    let (statuses, runs) = argon2_runs(&server, repeat(ARGON.1, 10)).await;
    assert_eq!(statuses, [200; 10]);
    assert_eq!(runs, 0, "verifications of a secret already verified");

    // A wrong secret does not cost argon2 twice either.
    let (status, runs) = argon2_runs(&server, attempt("nope")).await;
    assert_eq!((status, runs), (401, 1), "(status, verifications)");
    let (statuses, runs) = argon2_runs(&server, repeat("nope", 5)).await;
    assert_eq!(statuses, [401; 5], "a repeat is not a new failure");
    assert_eq!(runs, 0, "verifications of a secret already refused");

    // The right secret is still answered from the cache, although the
    // client id has used up its failures.
    let (statuses, runs) = argon2_runs(&server, repeat(ARGON.1, 3)).await;
    assert_eq!((statuses, runs), (vec![200; 3], 0));
}

#[tokio::test]
async fn password_grant_checks_the_user_and_returns_a_refresh_token_of_the_same_session() {
    let server = support::start().await;
    let (access, refresh) = server.login(WEB).await;
    let (ah, ac) = decode_parts(&access);
    let (rh, rc) = decode_parts(&refresh);
    assert_eq!(ah["typ"], "at+jwt");
    assert_eq!(rh["typ"], "rt+jwt");
    assert_eq!(ac["sub"], "alice");
    assert_eq!(rc["aud"], server.base.as_str(), "refresh aud = the issuer");
    assert_eq!(ac["sid"], rc["sid"]);
    assert_ne!(ac["jti"], rc["jti"]);
    assert!(rc["exp"].as_u64() > ac["exp"].as_u64());
    for (user, password) in [(ALICE.0, "wrong"), ("mallory", ALICE.1)] {
        let resp = server
            .post_form(
                "/oauth2/token",
                Some(WEB),
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{user}");
    }
}

#[tokio::test]
async fn grants_are_checked_per_client_and_unknown_ones_refused() {
    let server = support::start().await;
    let resp = server
        .post_form(
            "/oauth2/token",
            Some(MACHINE),
            &[
                ("grant_type", "password"),
                ("username", ALICE.0),
                ("password", ALICE.1),
            ],
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    let resp = server
        .post_form("/oauth2/token", Some(WEB), &[("grant_type", "implicit")])
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    let resp = server.post_form("/oauth2/token", Some(WEB), &[]).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn requested_scopes_must_be_allowed() {
    let server = support::start().await;
    let body = server
        .token_ok(
            WEB,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "write read"),
            ],
        )
        .await;
    assert_eq!(body["scope"], "write read");
    let resp = server
        .post_form(
            "/oauth2/token",
            Some(WEB),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read admin"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn refresh_rotates_and_may_narrow_but_not_widen_scope() {
    let server = support::start().await;
    let body = server
        .token_ok(
            WEB,
            &[
                ("grant_type", "password"),
                ("username", ALICE.0),
                ("password", ALICE.1),
                ("scope", "read write"),
            ],
        )
        .await;
    let refresh = body["refresh_token"].as_str().unwrap();
    let (_, old) = decode_parts(refresh);
    let resp = server
        .post_form(
            "/oauth2/token",
            Some(WEB),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("scope", "read"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["scope"], "read");
    let new_refresh = body["refresh_token"].as_str().unwrap();
    assert_ne!(new_refresh, refresh, "rotated");
    let (_, new) = decode_parts(new_refresh);
    assert_eq!(new["sid"], old["sid"]);
    assert_eq!(new["sub"], "alice");
    assert_eq!(
        new["scope"], "read write",
        "RFC 6749 §6: same scope as the old one"
    );
    let (_, access) = decode_parts(body["access_token"].as_str().unwrap());
    assert_eq!(access["sid"], old["sid"]);
    assert_eq!(access["scope"], "read");
    assert!(server.active(body["access_token"].as_str().unwrap()).await);

    // A session granted only `read` cannot widen to `write`, and the failed
    // attempt does not consume the refresh token.
    let body = server
        .token_ok(
            WEB,
            &[
                ("grant_type", "password"),
                ("username", ALICE.0),
                ("password", ALICE.1),
            ],
        )
        .await;
    assert_eq!(body["scope"], "read");
    let narrow = body["refresh_token"].as_str().unwrap();
    let resp = server
        .post_form(
            "/oauth2/token",
            Some(WEB),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", narrow),
                ("scope", "read write"),
            ],
        )
        .await;
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"], "invalid_scope");
    assert_eq!(server.refresh(WEB, narrow).await.status(), 200);
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_whole_session() {
    let server = support::start().await;
    let (first_access, first_refresh) = server.login(WEB).await;
    // The legitimate client rotates.
    let resp = server.refresh(WEB, &first_refresh).await;
    let body: Value = resp.json().await.unwrap();
    let second_access = body["access_token"].as_str().unwrap().to_owned();
    let second_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(server.active(&second_access).await);

    // A thief replays the retired refresh token.
    let resp = server.refresh(WEB, &first_refresh).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    // Every token of the session is dead, the victim's included.
    assert!(!server.active(&first_access).await);
    assert!(!server.active(&second_access).await);
    let resp = server.refresh(WEB, &second_refresh).await;
    assert_eq!(resp.status(), 400);
    // Another session of the same user is untouched.
    let (other_access, _) = server.login(WEB).await;
    assert!(server.active(&other_access).await);

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("revokd_refresh_reuse_detected_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("revokd_revocations_total{kind=\"sid\",source=\"reuse\"} 1"));
}

#[tokio::test]
async fn a_refresh_token_of_another_client_is_invalid_grant_and_changes_nothing() {
    let server = support::start().await;
    let (access, refresh) = server.login(WEB).await;
    let resp = server.refresh(OTHER, &refresh).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(server.active(&access).await);
    assert_eq!(
        server.refresh(WEB, &refresh).await.status(),
        200,
        "not consumed"
    );
}

#[tokio::test]
async fn an_access_token_is_not_a_refresh_token() {
    let server = support::start().await;
    let (access, _) = server.login(WEB).await;
    let resp = server.refresh(WEB, &access).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn concurrent_use_of_one_refresh_token_answers_at_most_one_rotation() {
    let server = support::start().await;
    let (_, refresh) = server.login(WEB).await;
    let attempts = (0..8).map(|_| server.refresh(WEB, &refresh));
    let responses = futures_join_all(attempts).await;
    let mut ok = Vec::new();
    let mut reuse = 0;
    for resp in responses {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        if status == 200 {
            ok.push(body["access_token"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"], "invalid_grant");
            if body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("reused"))
            {
                reuse += 1;
            }
        }
    }
    // Presentations before any rotation was answered are retries of one
    // another (only the last claim confirms); one after an answered rotation
    // is reuse and ends the session, the winner's tokens included.
    assert!(ok.len() <= 1, "{} rotations won", ok.len());
    if reuse > 0 {
        for token in &ok {
            assert!(!server.active(token).await);
        }
    }
    // Whatever happened, the token is spent now.
    assert_eq!(server.refresh(WEB, &refresh).await.status(), 400);
}

/// Runs futures concurrently on this task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(Option::unwrap));
    out
}
