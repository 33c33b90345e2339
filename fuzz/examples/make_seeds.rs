//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`:
//! real tokens of the fixture keys, real forms and Basic headers, real
//! encoded events and snapshots, real rule keys, and the example
//! configuration. Run from the repository root:
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`.
//! The output is deterministic but for the P-256 signatures (ECDSA is
//! randomized); rerunning it only rewrites the seeds.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use revokd::event::{Change, Event, Head, Snapshot};
use revokd::issuer::jwt::TokenKind;
use revokd::rule::{RevokedBefore, Rule, RuleKey};
use revokd_fuzz::{ED25519_KID, ISSUER, NOW, ODD_ID, ODD_SECRET, P256_KID, WEB_SECRET, real_token};

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    fs::create_dir_all(dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("corpus file");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");

    // jwt_verify: mode byte 0 = the token as is, 1/3 = header\npayload to sign.
    let dir = corpus.join("jwt_verify");
    let access = real_token(TokenKind::Access);
    let refresh = real_token(TokenKind::Refresh);
    write(&dir, "access", [b"\0", access.as_bytes()].concat());
    write(&dir, "refresh", [b"\0", refresh.as_bytes()].concat());
    let parts: Vec<&str> = access.split('.').collect();
    let header = URL_SAFE_NO_PAD.decode(parts[0]).expect("header");
    let payload = URL_SAFE_NO_PAD.decode(parts[1]).expect("payload");
    write(
        &dir,
        "signed-ed25519",
        [&b"\x01"[..], &header, b"\n", &payload].concat(),
    );
    let p256_header = format!(r#"{{"typ":"at+jwt","alg":"ES256","kid":"{P256_KID}"}}"#);
    write(
        &dir,
        "signed-p256",
        [&b"\x03"[..], p256_header.as_bytes(), b"\n", &payload].concat(),
    );
    let with_nbf = format!(
        r#"{{"iss":"{ISSUER}","sub":"s","aud":"api","client_id":"c","iat":{iat},"exp":{exp},"nbf":{nbf},"jti":"j","sid":"x"}}"#,
        iat = NOW,
        exp = NOW + 60,
        nbf = NOW + 3,
    );
    let ed_header =
        format!(r#"{{"typ":"application/AT+JWT","alg":"EdDSA","kid":"{ED25519_KID}"}}"#);
    write(
        &dir,
        "signed-nbf",
        [b"\x01", ed_header.as_bytes(), b"\n", with_nbf.as_bytes()].concat(),
    );
    let none = format!(r#"{{"typ":"at+jwt","alg":"none","kid":"{ED25519_KID}"}}"#);
    write(
        &dir,
        "alg-none",
        format!("\0{}.{}.", URL_SAFE_NO_PAD.encode(none), parts[1]),
    );

    // form_and_basic: "Authorization value\nbody", or a body alone.
    let dir = corpus.join("form_and_basic");
    let basic =
        |id: &str, secret: &str| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    write(
        &dir,
        "basic",
        format!(
            "{}\ngrant_type=client_credentials&scope=read",
            basic("web", WEB_SECRET)
        ),
    );
    write(
        &dir,
        "basic-encoded",
        format!(
            "{}\ngrant_type=client_credentials",
            basic("odd+id%3A%C3%BC", "p%40ss%3Aw%25rd%2B")
        ),
    );
    write(
        &dir,
        "post",
        format!("grant_type=client_credentials&client_id=web&client_secret={WEB_SECRET}&scope="),
    );
    write(
        &dir,
        "post-encoded",
        format!(
            "client_id=odd+id%3A%c3%bc&client_secret=p%40ss%3Aw%25rd%2B&token={}",
            refresh
        ),
    );
    write(
        &dir,
        "password",
        "grant_type=password&username=alice&password=a+b%20c&client_id=web",
    );
    write(&dir, "repeated", "a=&a=x");
    let _ = (ODD_ID, ODD_SECRET);

    // event_decode: events and snapshots as the Redis scripts publish them.
    let dir = corpus.join("event_decode");
    let head = Head([0xab; 20]);
    let add = Event {
        seq: 1,
        change: Change::Add(Rule {
            key: "sid:sid-7Jm2".parse().expect("key"),
            revoked_before: RevokedBefore::IssuedAtOrBefore(NOW),
            expires_at: NOW + 86_400,
        }),
        published_at_ms: NOW * 1000,
        head,
        prev_head: Head::GENESIS,
    };
    write(&dir, "add", add.encode());
    let all = Event {
        seq: 2,
        change: Change::Add(Rule {
            key: "subclient:alice/with/slash/web".parse().expect("key"),
            revoked_before: RevokedBefore::All,
            expires_at: NOW + 300,
        }),
        published_at_ms: NOW * 1000 + 1,
        head: Head([0x11; 20]),
        prev_head: head,
    };
    write(&dir, "add-all", all.encode());
    let remove = Event {
        seq: 3,
        change: Change::Remove(RuleKey::Client("web".into())),
        published_at_ms: NOW * 1000 + 2,
        head: Head([0x22; 20]),
        prev_head: Head([0x11; 20]),
    };
    write(&dir, "remove", remove.encode());
    let snapshot = Snapshot {
        seq: 3,
        head: Head([0x22; 20]),
        rules: vec![
            Rule {
                key: RuleKey::Jti("q8sXbZfVh0WcJz0m4mQ9Ow".into()),
                revoked_before: RevokedBefore::All,
                expires_at: NOW + 300,
            },
            Rule {
                key: RuleKey::Sub("alice".into()),
                revoked_before: RevokedBefore::IssuedAtOrBefore(NOW - 5),
                expires_at: NOW + 86_400,
            },
        ],
    };
    write(&dir, "snapshot", snapshot.encode());

    // rule_key: one key of each kind.
    let dir = corpus.join("rule_key");
    for (name, key) in [
        ("jti", "jti:q8sXbZfVh0WcJz0m4mQ9Ow"),
        ("sid", "sid:sid-7Jm2"),
        ("sub", "sub:alice@example.com"),
        ("client", "client:web"),
        ("subclient", "subclient:user/with/slashes/web"),
        ("unicode", "sub:ünïcödé:colon"),
    ] {
        write(&dir, name, key);
    }

    // config: the example production file and a small dev one.
    let dir = corpus.join("config");
    let example =
        fs::read_to_string(root.join("../deploy/revokd.toml")).expect("deploy/revokd.toml");
    write(&dir, "deploy-revokd", example);
    write(
        &dir,
        "sentinel",
        r#"issuer = "http://127.0.0.1:8080"
listen = "127.0.0.1:8080"
[tokens]
access_ttl = 300
refresh_ttl = "1day 2h"
[store]
sentinels = ["redis://127.0.0.1:26379", "rediss://:pw@10.0.0.1:26380"]
sentinel_master = "mymaster"
replica_acks = 1
replica_ack_timeout = "250ms"
[limits]
rate_per_second = 0.5
burst = 1
[[clients]]
id = "svc"
secret_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$bWFkZXVwbWFkZXVwbWFkZXVwbWFkZXVwbWFkZXVwMTI"
grants = ["password"]
scopes = ["a", "b"]
default_scopes = ["a"]
access_ttl = "90s"
"#,
    );
    write(
        &dir,
        "cluster",
        "[store]\ncluster = [\"redis://a:7000\", \"redis://b:7001\"]\nprefix = \"rk\"\n[revocation]\naccess_token = \"session\"\n",
    );
    // The seeds are valid inputs: the targets' interesting paths start there.
    let verifier = &*revokd_fuzz::UNCACHED_VERIFIER;
    verifier
        .verify_at(&access, NOW)
        .expect("the access seed verifies");
    revokd::issuer::jwt::verify(
        &revokd_fuzz::KEYS,
        ISSUER,
        &refresh,
        Some(TokenKind::Refresh),
        NOW,
    )
    .expect("the refresh seed verifies");
    for name in ["deploy-revokd", "sentinel", "cluster"] {
        let text = fs::read_to_string(corpus.join("config").join(name)).expect("seed");
        revokd::config::Config::from_toml(&text).expect("the config seed parses");
    }
    for name in ["add", "add-all", "remove"] {
        Event::decode(&fs::read(corpus.join("event_decode").join(name)).expect("seed"))
            .expect("the event seed decodes");
    }
    println!("seeds written under {}", corpus.display());
}
