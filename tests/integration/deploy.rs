//! The files in `deploy/` stay true to the code: the example configuration
//! parses, and the dashboard and alert rules name only metrics revokd
//! exports. (`scripts/test` also runs `promtool check` on the rules.)

use std::collections::BTreeSet;

/// Every `revokd_*` metric name declared in `src/metrics.rs`.
fn exported() -> BTreeSet<String> {
    let source = include_str!("../../src/metrics.rs");
    let names: BTreeSet<String> = source
        .split('"')
        .filter(|piece| {
            piece.starts_with("revokd_")
                && piece.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .map(str::to_owned)
        .collect();
    assert!(
        names.len() >= 12,
        "metrics.rs declares the contract's metrics: {names:?}"
    );
    names
}

/// Metric names used in a PromQL-bearing text, histogram suffixes removed.
fn used(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("revokd_"))
        .map(|word| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_owned()
        })
        .collect()
}

#[test]
fn the_dashboard_parses_and_names_only_exported_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana/revokd.json")).unwrap();
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap())
        .map(|target| target["expr"].as_str().unwrap())
        .collect();
    let used: BTreeSet<String> = exprs.iter().flat_map(|expr| used(expr)).collect();
    let exported = exported();
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "dashboard names metrics the code does not export: {unknown:?}"
    );
    // It covers the contract: issuance, revocations, propagation, staleness, rules, errors.
    for needed in [
        "revokd_tokens_issued_total",
        "revokd_revocations_total",
        "revokd_denylist_propagation_seconds",
        "revokd_denylist_staleness_seconds",
        "revokd_denylist_rules",
        "revokd_token_errors_total",
    ] {
        assert!(used.contains(needed), "dashboard lacks {needed}");
    }
}

#[test]
fn alert_rules_name_only_exported_metrics() {
    let used = used(include_str!("../../deploy/prometheus/alerts.yml"));
    let exported = exported();
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "alerts name metrics the code does not export: {unknown:?}"
    );
    assert!(used.len() >= 5, "{used:?}");
}

#[test]
fn the_example_configurations_parse_and_validate() {
    for (name, text) in [
        (
            "deploy/revokd.toml",
            include_str!("../../deploy/revokd.toml").to_owned(),
        ),
        ("the Kubernetes ConfigMap", kubernetes_config()),
        (
            "deploy/redis/revokd-sentinel.toml",
            include_str!("../../deploy/redis/revokd-sentinel.toml").to_owned(),
        ),
        (
            "deploy/redis/revokd-cluster.toml",
            include_str!("../../deploy/redis/revokd-cluster.toml").to_owned(),
        ),
    ] {
        let config =
            revokd::config::Config::from_toml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        config.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("deploy/redis/") {
            assert!(
                config.store.topology().is_some(),
                "{name}: a Redis topology"
            );
        }
    }
}

/// The `revokd.toml` embedded in the Kubernetes ConfigMap, unindented.
fn kubernetes_config() -> String {
    let manifest = include_str!("../../deploy/kubernetes/revokd.yaml");
    let start = manifest.find("revokd.toml: |").unwrap();
    manifest[start..]
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("    "))
        .map(|line| format!("{}\n", &line[4..]))
        .collect()
}
