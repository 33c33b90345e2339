//! Every Prometheus metric, declared once, registered on a
//! [`prometheus::Registry`] the caller passes in (never the global
//! one: an embedding resource server has its own).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, exponential_buckets,
};

/// The issuer's metrics (contract names, prefix `revokd_`).
#[derive(Clone, Debug)]
pub struct IssuerMetrics {
    /// `revokd_tokens_issued_total{grant_type,client_id}`: token responses.
    /// `client_id` only ever carries configured (authenticated) ids.
    pub tokens_issued: IntCounterVec,
    /// `revokd_token_errors_total{error}`: OAuth error responses by code.
    pub token_errors: IntCounterVec,
    /// `revokd_revocations_total{kind,source}`: rules written, by key kind
    /// and by what caused them (`revoke`, `reuse`, `admin`).
    pub revocations: IntCounterVec,
    /// `revokd_refresh_reuse_detected_total`: retired refresh tokens
    /// presented again.
    pub refresh_reuse_detected: IntCounter,
    /// `revokd_http_request_duration_seconds{route,status}`.
    pub http_request_duration: HistogramVec,
}

impl IssuerMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<IssuerMetrics, prometheus::Error> {
        let tokens_issued = IntCounterVec::new(
            Opts::new(
                "revokd_tokens_issued_total",
                "Tokens issued, by grant and client",
            ),
            &["grant_type", "client_id"],
        )?;
        let token_errors = IntCounterVec::new(
            Opts::new(
                "revokd_token_errors_total",
                "OAuth error responses, by error code",
            ),
            &["error"],
        )?;
        let revocations = IntCounterVec::new(
            Opts::new(
                "revokd_revocations_total",
                "Revocation rules written, by key kind and source",
            ),
            &["kind", "source"],
        )?;
        let refresh_reuse_detected = IntCounter::new(
            "revokd_refresh_reuse_detected_total",
            "Retired refresh tokens presented again (the session was revoked)",
        )?;
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "revokd_http_request_duration_seconds",
                "HTTP request duration, by route and status",
            )
            // 50 µs .. ~1.6 s
            .buckets(exponential_buckets(0.000_05, 2.0, 16)?),
            &["route", "status"],
        )?;
        registry.register(Box::new(tokens_issued.clone()))?;
        registry.register(Box::new(token_errors.clone()))?;
        registry.register(Box::new(revocations.clone()))?;
        registry.register(Box::new(refresh_reuse_detected.clone()))?;
        registry.register(Box::new(http_request_duration.clone()))?;
        Ok(IssuerMetrics {
            tokens_issued,
            token_errors,
            revocations,
            refresh_reuse_detected,
            http_request_duration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_on_the_given_registry_only() {
        let registry = Registry::new();
        let metrics = IssuerMetrics::register(&registry).unwrap();
        metrics.refresh_reuse_detected.inc();
        metrics
            .tokens_issued
            .with_label_values(&["client_credentials", "web"])
            .inc();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert!(names.contains(&"revokd_refresh_reuse_detected_total".to_owned()));
        assert!(names.contains(&"revokd_tokens_issued_total".to_owned()));
        assert!(
            IssuerMetrics::register(&registry).is_err(),
            "no double registration"
        );
    }
}
