//! A revokd TOML configuration, built key by key instead of written by hand:
//! `issuer`, `listen`, `[tokens]`, `[limits]`, `[store]`, `[[signing_keys]]`,
//! `[[clients]]` and `[[users]]` (the keys of `src/config.rs`), plus the
//! cheap argon2 hashes tests give their users.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};

/// A value as TOML writes it.
pub trait TomlValue {
    /// The value's TOML text.
    fn to_toml(&self) -> String;
}

impl TomlValue for &str {
    fn to_toml(&self) -> String {
        format!("{self:?}")
    }
}

impl TomlValue for String {
    fn to_toml(&self) -> String {
        self.as_str().to_toml()
    }
}

impl TomlValue for u64 {
    fn to_toml(&self) -> String {
        self.to_string()
    }
}

impl TomlValue for Vec<String> {
    fn to_toml(&self) -> String {
        let items: Vec<String> = self.iter().map(TomlValue::to_toml).collect();
        format!("[{}]", items.join(", "))
    }
}

impl TomlValue for &[&str] {
    fn to_toml(&self) -> String {
        let items: Vec<String> = self.iter().map(TomlValue::to_toml).collect();
        format!("[{}]", items.join(", "))
    }
}

/// `key = value` lines of one table, in the order they were set.
type Table = Vec<(String, String)>;

/// One `[[clients]]` entry.
pub struct Client {
    id: String,
    secret_hash: String,
    grants: Vec<String>,
    scopes: Vec<String>,
    default_scopes: Option<Vec<String>>,
    audience: Vec<String>,
}

impl Client {
    /// Client `id` whose secret is `secret` (stored as its `sha256:` hash).
    pub fn new(id: &str, secret: &str) -> Client {
        Client::with_hash(id, &revokd::issuer::client_auth::sha256_secret_hash(secret))
    }

    /// Client `id` whose secret is `secret` (stored as a cheap argon2 hash).
    pub fn argon2(id: &str, secret: &str) -> Client {
        Client::with_hash(id, &cheap_argon2(secret))
    }

    /// Client `id` with `secret_hash` as given.
    pub fn with_hash(id: &str, secret_hash: &str) -> Client {
        Client {
            id: id.to_owned(),
            secret_hash: secret_hash.to_owned(),
            grants: Vec::new(),
            scopes: Vec::new(),
            default_scopes: None,
            audience: Vec::new(),
        }
    }

    /// `grants`.
    pub fn grants(mut self, grants: &[&str]) -> Client {
        self.grants = owned(grants);
        self
    }

    /// `scopes`.
    pub fn scopes(mut self, scopes: &[&str]) -> Client {
        self.scopes = owned(scopes);
        self
    }

    /// `default_scopes`.
    pub fn default_scopes(mut self, scopes: &[&str]) -> Client {
        self.default_scopes = Some(owned(scopes));
        self
    }

    /// `audience`.
    pub fn audience(mut self, audience: &[&str]) -> Client {
        self.audience = owned(audience);
        self
    }

    fn table(&self) -> Table {
        let mut table = vec![
            entry("id", self.id.as_str()),
            entry("secret_hash", self.secret_hash.as_str()),
        ];
        for (key, list) in [
            ("grants", &self.grants),
            ("scopes", &self.scopes),
            ("audience", &self.audience),
        ] {
            if !list.is_empty() {
                table.push(entry(key, list.clone()));
            }
        }
        if let Some(scopes) = &self.default_scopes {
            table.push(entry("default_scopes", scopes.clone()));
        }
        table
    }
}

/// A revokd configuration file.
#[derive(Default)]
pub struct ConfigFile {
    top: Table,
    tokens: Table,
    limits: Table,
    store: Table,
    signing_keys: Vec<Table>,
    clients: Vec<Table>,
    users: Vec<Table>,
}

impl ConfigFile {
    /// An empty configuration (every key at its default).
    pub fn new() -> ConfigFile {
        ConfigFile::default()
    }

    /// `issuer`.
    pub fn issuer(mut self, url: &str) -> ConfigFile {
        self.top.push(entry("issuer", url));
        self
    }

    /// `listen`.
    pub fn listen(mut self, addr: &str) -> ConfigFile {
        self.top.push(entry("listen", addr));
        self
    }

    /// `[tokens]`: `access_ttl` and `refresh_ttl` (`"5m"`, `"90s"`…).
    pub fn tokens(mut self, access_ttl: &str, refresh_ttl: &str) -> ConfigFile {
        self.tokens.push(entry("access_ttl", access_ttl));
        self.tokens.push(entry("refresh_ttl", refresh_ttl));
        self
    }

    /// One key of `[limits]`.
    pub fn limit(mut self, key: &str, value: impl TomlValue) -> ConfigFile {
        self.limits.push(entry(key, value));
        self
    }

    /// One key of `[store]`.
    pub fn store(mut self, key: &str, value: impl TomlValue) -> ConfigFile {
        self.store.push(entry(key, value));
        self
    }

    /// `[store] redis_url`.
    pub fn redis_url(self, url: &str) -> ConfigFile {
        self.store("redis_url", url)
    }

    /// One `[[signing_keys]]` entry.
    pub fn signing_key(mut self, kid: &str, private_key_file: &Path) -> ConfigFile {
        let file = private_key_file.display().to_string();
        self.signing_keys
            .push(vec![entry("kid", kid), entry("private_key_file", file)]);
        self
    }

    /// One `[[clients]]` entry.
    pub fn client(mut self, client: Client) -> ConfigFile {
        self.clients.push(client.table());
        self
    }

    /// One `[[users]]` entry whose password is `password` (a cheap argon2
    /// hash).
    pub fn user(mut self, username: &str, password: &str) -> ConfigFile {
        self.users.push(vec![
            entry("username", username),
            entry("password_hash", cheap_argon2(password)),
        ]);
        self
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        let mut text = String::new();
        write_lines(&mut text, &self.top);
        for (name, table) in [
            ("tokens", &self.tokens),
            ("limits", &self.limits),
            ("store", &self.store),
        ] {
            if !table.is_empty() {
                let _ = writeln!(text, "\n[{name}]");
                write_lines(&mut text, table);
            }
        }
        for (name, tables) in [
            ("signing_keys", &self.signing_keys),
            ("clients", &self.clients),
            ("users", &self.users),
        ] {
            for table in tables {
                let _ = writeln!(text, "\n[[{name}]]");
                write_lines(&mut text, table);
            }
        }
        text
    }

    /// Writes the TOML text to `<dir>/revokd.toml` and returns that path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let file = dir.join("revokd.toml");
        std::fs::write(&file, self.to_toml())
            .unwrap_or_else(|err| panic!("write {}: {err}", file.display()));
        file
    }
}

/// A cheap argon2id hash (tests only: 8 KiB, one pass).
pub fn cheap_argon2(password: &str) -> String {
    argon2_hash(password, 8, 1)
}

/// An argon2id hash that costs `kib` KiB and `passes` passes to verify.
pub fn argon2_hash(password: &str, kib: u32, passes: u32) -> String {
    let params = Params::new(kib, passes, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(password.as_bytes(), b"revokd-test-salt")
        .unwrap()
        .to_string()
}

fn entry(key: &str, value: impl TomlValue) -> (String, String) {
    (key.to_owned(), value.to_toml())
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn write_lines(text: &mut String, table: &Table) {
    for (key, value) in table {
        let _ = writeln!(text, "{key} = {value}");
    }
}
