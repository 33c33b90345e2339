//! Every Prometheus metric, declared once, registered on a
//! [`prometheus::Registry`] the caller passes in (never the global
//! one: an embedding resource server has its own).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    exponential_buckets,
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
    /// `revokd_http_refused_total{reason}` and `revokd_http_connections`:
    /// besides the accept loop's reasons, the issuer's `[limits]` guards
    /// count `body_timeout`, `body_too_large`, `peer_rate`, `overloaded`
    /// (load shedding), `argon2_queue` and `argon2_failures`.
    pub connections: ConnectionMetrics,
    /// `revokd_argon2_running`: argon2 verifications running now (on the
    /// blocking pool, whether or not their request is still waiting).
    pub argon2_running: IntGauge,
    /// `revokd_argon2_waiting`: argon2 verifications waiting for a slot.
    pub argon2_waiting: IntGauge,
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
        let connections = ConnectionMetrics::register(registry)?;
        let argon2_running =
            IntGauge::new("revokd_argon2_running", "argon2 verifications running now")?;
        let argon2_waiting = IntGauge::new(
            "revokd_argon2_waiting",
            "argon2 verifications waiting for a slot",
        )?;
        registry.register(Box::new(argon2_running.clone()))?;
        registry.register(Box::new(argon2_waiting.clone()))?;
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
            connections,
            argon2_running,
            argon2_waiting,
        })
    }

    /// Counts one refusal under `reason` (`revokd_http_refused_total`).
    pub fn refused(&self, reason: &str) {
        self.connections.refused(reason);
    }
}

/// The accept loop's metrics (the issuer's and the gate's).
#[derive(Clone, Debug)]
pub struct ConnectionMetrics {
    /// `revokd_http_refused_total{reason}`: connections and requests
    /// refused by a limit: `max_connections`, `max_connections_per_peer`,
    /// `header_timeout`, `write_timeout` (and the issuer's own reasons).
    pub http_refused: IntCounterVec,
    /// `revokd_http_connections`: connections open now.
    pub http_connections: IntGauge,
}

impl ConnectionMetrics {
    /// Creates and registers both on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<ConnectionMetrics> {
        let http_refused = IntCounterVec::new(
            Opts::new(
                "revokd_http_refused_total",
                "Connections and requests refused by a limit, by reason",
            ),
            &["reason"],
        )?;
        let http_connections =
            IntGauge::new("revokd_http_connections", "HTTP connections open now")?;
        registry.register(Box::new(http_refused.clone()))?;
        registry.register(Box::new(http_connections.clone()))?;
        Ok(ConnectionMetrics {
            http_refused,
            http_connections,
        })
    }

    /// Counts one refusal under `reason`.
    pub fn refused(&self, reason: &str) {
        self.http_refused.with_label_values(&[reason]).inc();
    }
}

// === denylist and subscriber ===

use crate::denylist::Denylist;

/// `revokd_denylist_rules` and `revokd_denylist_bloom_bits`, read from the
/// denylist when scraped (nothing to keep up to date, nothing on the hot path).
struct DenylistGauges {
    denylist: Denylist,
    rules: IntGauge,
    bloom_bits: IntGauge,
}

impl Collector for DenylistGauges {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.rules.desc();
        descs.extend(self.bloom_bits.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.rules
            .set(i64::try_from(self.denylist.len()).unwrap_or(i64::MAX));
        self.bloom_bits
            .set(i64::try_from(self.denylist.bloom_bits()).unwrap_or(i64::MAX));
        let mut families = self.rules.collect();
        families.extend(self.bloom_bits.collect());
        families
    }
}

/// Registers the denylist's size gauges (`revokd_denylist_rules`,
/// `revokd_denylist_bloom_bits`) on `registry`; they read `denylist` when
/// scraped. [`DenylistMetrics::register`] includes them.
pub fn register_denylist_gauges(
    registry: &Registry,
    denylist: &Denylist,
) -> prometheus::Result<()> {
    registry.register(Box::new(DenylistGauges {
        denylist: denylist.clone(),
        rules: IntGauge::new("revokd_denylist_rules", "Rules held by the denylist")?,
        bloom_bits: IntGauge::new(
            "revokd_denylist_bloom_bits",
            "Size of the denylist's bloom filters in bits",
        )?,
    }))
}

/// The denylist and subscriber metrics of the contract, registered on the
/// embedding application's registry.
#[derive(Clone)]
pub struct DenylistMetrics {
    /// `revokd_denylist_events_applied_total`
    pub(crate) events_applied: IntCounter,
    /// `revokd_denylist_resyncs_total{reason}`
    pub(crate) resyncs: IntCounterVec,
    /// `revokd_denylist_history_merges_total{relation}`: syncs that found
    /// Redis on another history (it came back older or empty) and merged.
    pub(crate) history_merges: IntCounterVec,
    /// `revokd_denylist_restored_rules_total`: rules written back into a
    /// Redis that had lost them.
    pub(crate) restored_rules: IntCounter,
    /// `revokd_denylist_staleness_seconds`
    pub(crate) staleness: prometheus::Gauge,
    /// `revokd_denylist_propagation_seconds`
    pub(crate) propagation: Histogram,
    /// `revokd_redis_connected`
    pub(crate) redis_connected: IntGauge,
}

impl DenylistMetrics {
    /// Creates the subscriber's metrics and the denylist's size gauges and
    /// registers them on `registry`.
    pub fn register(
        registry: &Registry,
        denylist: &Denylist,
    ) -> prometheus::Result<DenylistMetrics> {
        register_denylist_gauges(registry, denylist)?;
        let metrics = DenylistMetrics {
            events_applied: IntCounter::new(
                "revokd_denylist_events_applied_total",
                "Revocation events applied to the denylist",
            )?,
            resyncs: IntCounterVec::new(
                Opts::new(
                    "revokd_denylist_resyncs_total",
                    "Full resyncs with Redis, by reason",
                ),
                &["reason"],
            )?,
            history_merges: IntCounterVec::new(
                Opts::new(
                    "revokd_denylist_history_merges_total",
                    "Syncs that found Redis on another history than the one followed \
                     (restarted older or empty, a failover that lost writes), by how the \
                     fork point was found (forked: from the log; unproven: not at all)",
                ),
                &["relation"],
            )?,
            restored_rules: IntCounter::new(
                "revokd_denylist_restored_rules_total",
                "Rules written back into a Redis that had lost them",
            )?,
            staleness: prometheus::Gauge::new(
                "revokd_denylist_staleness_seconds",
                "Seconds since the denylist last proved it was in sync with Redis",
            )?,
            propagation: Histogram::with_opts(
                HistogramOpts::new(
                    "revokd_denylist_propagation_seconds",
                    "Time from an event's publication to its application here",
                )
                .buckets(vec![
                    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
                ]),
            )?,
            redis_connected: IntGauge::new(
                "revokd_redis_connected",
                "1 while the subscriber holds a Redis connection",
            )?,
        };
        registry.register(Box::new(metrics.events_applied.clone()))?;
        registry.register(Box::new(metrics.resyncs.clone()))?;
        registry.register(Box::new(metrics.history_merges.clone()))?;
        registry.register(Box::new(metrics.restored_rules.clone()))?;
        registry.register(Box::new(metrics.staleness.clone()))?;
        registry.register(Box::new(metrics.propagation.clone()))?;
        registry.register(Box::new(metrics.redis_connected.clone()))?;
        Ok(metrics)
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
