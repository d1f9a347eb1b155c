//! What `/metrics` shows on a node: the appliance's tenants, signing,
//! cluster, tenant loads, sessions and audit; the QUIC and HTTP listeners;
//! the process.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::render_process;
use crate::api::Appliance;

/// Renders the appliance's metrics lines.
pub fn render_metrics(appliance: &Appliance, out: &mut String) {
    use std::fmt::Write;
    for live in appliance.loaded_tenants() {
        if !live.metrics.is_idle() {
            live.metrics.render(out, &live.slug);
        }
    }
    for (index, backend) in ["software", "pkcs11"].iter().enumerate() {
        appliance.signing_latency()[index].render(
            out,
            "sigil_signing_latency_seconds",
            &format!("backend=\"{backend}\""),
        );
    }
    {
        let replica = appliance.replica();
        let _ = writeln!(
            out,
            "# TYPE sigil_cluster_lease_fresh gauge\nsigil_cluster_lease_fresh {}",
            u8::from(replica.can_serve())
        );
        let _ = writeln!(out, "sigil_cluster_ready {}", u8::from(replica.is_ready()));
        let lag = replica.lag();
        let _ = writeln!(
            out,
            "# TYPE sigil_replication_lag_seconds summary\nsigil_replication_lag_seconds_sum {}",
            lag.sum_us as f64 / 1e6
        );
        let _ = writeln!(out, "sigil_replication_lag_seconds_count {}", lag.count);
        let _ = writeln!(
            out,
            "sigil_replication_lag_max_seconds {}",
            lag.max_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# TYPE sigil_replication_dropped_total counter\nsigil_replication_dropped_total {}",
            lag.dropped
        );
        let _ = writeln!(
            out,
            "# TYPE sigil_replication_resent_total counter\nsigil_replication_resent_total {}",
            lag.resent
        );
    }
    if let Some(auth) = appliance.authentication_started() {
        // The hashing pool (issue 18): jobs run, and those refused with
        // `overloaded` because its queue was full.
        let (pool, size) = (auth.pool().stats(), auth.pool().size());
        let _ = writeln!(
            out,
            "# TYPE sigil_auth_hash_jobs_total counter\nsigil_auth_hash_jobs_total {}\n# TYPE sigil_auth_hash_overloaded_total counter\nsigil_auth_hash_overloaded_total {}\nsigil_auth_hash_pool_threads {}",
            pool.done.load(Ordering::Relaxed),
            pool.refused.load(Ordering::Relaxed),
            size.threads
        );
    }
    appliance.scim_metrics().render(out);
    appliance.logout_metrics().render(out);
    appliance.oauth_metrics().render(out);
    let cache = appliance.tenant_cache();
    let (loaded, loading, queued) = cache.sizes();
    let loads = cache.stats();
    let _ = writeln!(
        out,
        "# TYPE sigil_tenants_loaded gauge\nsigil_tenants_loaded {loaded}\nsigil_tenant_loads_running {loading}\nsigil_tenant_loads_queued {queued}"
    );
    for (name, value) in [
        (
            "sigil_tenant_loads_total{outcome=\"loaded\"}",
            &loads.loaded,
        ),
        (
            "sigil_tenant_loads_total{outcome=\"failed\"}",
            &loads.failed,
        ),
        (
            "sigil_tenant_loads_total{outcome=\"refused\"}",
            &loads.refused,
        ),
        ("sigil_tenant_evictions_total", &loads.evicted),
    ] {
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
    let table = appliance.sessions();
    let stats = appliance.journal().stats();
    let gauges = [
        ("sigil_sessions", table.len() as u64),
        (
            "sigil_sessions_created_total",
            table.stats().created.load(Ordering::Relaxed),
        ),
        (
            "sigil_sessions_reclaimed_total",
            table.stats().reclaimed.load(Ordering::Relaxed),
        ),
        ("sigil_audit_backlog", stats.queued.load(Ordering::Relaxed)),
        (
            "sigil_audit_appended_total",
            stats.appended.load(Ordering::Relaxed),
        ),
        (
            "sigil_audit_syncs_total",
            stats.syncs.load(Ordering::Relaxed),
        ),
        (
            "sigil_ready",
            u64::from(appliance.ready().load(Ordering::Relaxed)),
        ),
    ];
    for (name, value) in gauges {
        let _ = writeln!(out, "{name} {value}");
    }
    let _ = writeln!(out, "# TYPE sigil_audit_sync_seconds histogram");
    stats
        .sync_latency
        .render(out, "sigil_audit_sync_seconds", "");
    let _ = writeln!(out, "# TYPE sigil_audit_segment_cut_seconds histogram");
    stats
        .cut_latency
        .render(out, "sigil_audit_segment_cut_seconds", "");
    let _ = writeln!(
        out,
        "# TYPE sigil_audit_unshipped_records gauge\nsigil_audit_unshipped_records {}",
        stats.unshipped()
    );
    let _ = writeln!(
        out,
        "# TYPE sigil_audit_ship_lag_seconds gauge\nsigil_audit_ship_lag_seconds {}",
        stats.ship_lag(crate::api::wall_ms()).as_secs_f64()
    );
}

/// What `/metrics` renders on a node: the appliance's lines, the QUIC and
/// HTTP listeners' and the process's.
pub fn node_renderer(
    appliance: Arc<Appliance>,
    quic: Arc<crate::quic::QuicStats>,
    http: Arc<std::sync::OnceLock<Arc<crate::http::server::HttpStats>>>,
    http_cap: usize,
    file_limit: crate::posture::FileLimit,
) -> Arc<dyn Fn() -> String + Send + Sync> {
    Arc::new(move || {
        let mut out = String::new();
        render_metrics(&appliance, &mut out);
        let q = &quic;
        let counters = [
            ("sigil_quic_connections_total", &q.connections),
            ("sigil_quic_handshake_failures_total", &q.handshake_failures),
            ("sigil_quic_requests_total", &q.requests),
            ("sigil_rejected_total{reason=\"overloaded\"}", &q.overloaded),
            ("sigil_rejected_total{reason=\"bad_frame\"}", &q.bad_frames),
            ("sigil_quic_streams_closed_total", &q.streams_closed),
            ("sigil_in_flight", &q.in_flight),
        ];
        for (name, value) in counters {
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        if let Some(h) = http.get() {
            for (name, value) in [
                ("sigil_http_requests_total", &h.requests),
                ("sigil_http_rejected_total", &h.rejected),
                ("sigil_http_connections", &h.connections),
                ("sigil_http_connections_refused_total", &h.refused),
                ("sigil_http_connections_evicted_total", &h.evicted),
                (
                    "sigil_http_tenant_wait_timeouts_total",
                    &h.tenant_wait_timeouts,
                ),
            ] {
                let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
            }
        }
        let _ = writeln!(out, "sigil_http_connections_max {http_cap}");
        if let Some(soft) = file_limit.soft {
            let _ = writeln!(out, "sigil_open_files_limit {soft}");
        }
        render_process(&mut out);
        out
    })
}
