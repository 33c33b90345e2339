//! `Config::from_toml` on arbitrary text: an error, never a panic. What
//! parses is resolved the way the server does at start-up (clients, store
//! topology and options), which must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revokd::config::Config;
use std::sync::LazyLock;

use revokd::issuer::client_auth::Clients;
use revokd::metrics::IssuerMetrics;

static METRICS: LazyLock<IssuerMetrics> = LazyLock::new(|| {
    IssuerMetrics::register(&prometheus::Registry::new()).expect("the issuer metrics register")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    config.validate().expect("a parsed configuration is valid");
    let _ = Clients::new(&config, &METRICS);
    if let Some(topology) = config.store.topology() {
        let _ = topology.to_string();
    }
    let _ = config.store.options();
    let _ = format!("{config:?}");
});
