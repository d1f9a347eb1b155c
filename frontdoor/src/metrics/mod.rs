//! Operator metrics in the Prometheus text format. Counters and histograms
//! are plain atomics owned by what they count (a tenant's live state, a
//! backend), so recording costs a few uncontended atomic adds and never a
//! lock; `/metrics` walks them when scraped ([`node::node_renderer`]).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use sigil_proto::ErrorCode;

pub mod node;

pub use directory::latency::{LatencyHistogram, LATENCY_BUCKETS_US};

/// The kinds of issuance counted per tenant.
pub const ISSUE_KINDS: [&str; 3] = ["id_token", "access_token", "saml"];

/// Per-tenant counters, owned by the tenant's live state.
#[derive(Debug, Default)]
pub struct TenantMetrics {
    /// Issued, by [`ISSUE_KINDS`] index.
    pub issued: [AtomicU64; 3],
    /// Refused requests, by [`ErrorCode::ALL`] index.
    pub refused: [AtomicU64; ErrorCode::ALL.len()],
    /// End-to-end latency of issuing operations inside the node.
    pub issue_latency: LatencyHistogram,
}

impl TenantMetrics {
    /// Counts a refusal.
    pub fn refuse(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether nothing was counted yet (such a tenant has no lines: with
    /// thousands of tenants loaded for their documents alone, `/metrics`
    /// stays the size of the active ones).
    pub fn is_idle(&self) -> bool {
        self.issued
            .iter()
            .chain(self.refused.iter())
            .all(|n| n.load(Ordering::Relaxed) == 0)
    }

    /// Appends this tenant's lines.
    pub fn render(&self, out: &mut String, tenant: &str) {
        for (i, kind) in ISSUE_KINDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "sigil_issued_total{{tenant=\"{tenant}\",kind=\"{kind}\"}} {}",
                self.issued[i].load(Ordering::Relaxed)
            );
        }
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            let n = self.refused[i].load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "sigil_refused_total{{tenant=\"{tenant}\",code=\"{code}\"}} {n}"
                );
            }
        }
        self.issue_latency.render(
            out,
            "sigil_issue_latency_seconds",
            &format!("tenant=\"{tenant}\""),
        );
    }
}

/// What [`ScimMetrics::requests`] is split by (label `route`).
pub const SCIM_ROUTES: [&str; 6] = [
    "users_list",
    "users_read",
    "users_write",
    "groups",
    "bulk",
    "other",
];

/// The SCIM server's latencies on this node (the control listener),
/// measured inside the node: from the request's head to its answer.
#[derive(Debug, Default)]
pub struct ScimMetrics {
    /// Whole requests (authentication, directory, rendering), by
    /// [`SCIM_ROUTES`] index: `sigil_scim_request_seconds{route}`.
    pub requests: [LatencyHistogram; SCIM_ROUTES.len()],
    /// The bearer-token check (tenant looked up, token hash compared):
    /// `sigil_scim_auth_seconds`.
    pub auth: LatencyHistogram,
    /// The directory part of `GET /Users` (tenant scope opened, total and
    /// page read): `sigil_scim_directory_seconds{route="users_list"}`.
    pub users_list_directory: LatencyHistogram,
}

impl ScimMetrics {
    /// Appends the lines of what was observed (nothing before the first
    /// SCIM request).
    pub fn render(&self, out: &mut String) {
        for (histogram, route) in self.requests.iter().zip(SCIM_ROUTES) {
            if histogram.count() > 0 {
                histogram.render(
                    out,
                    "sigil_scim_request_seconds",
                    &format!("route=\"{route}\""),
                );
            }
        }
        if self.auth.count() > 0 {
            self.auth.render(out, "sigil_scim_auth_seconds", "");
        }
        if self.users_list_directory.count() > 0 {
            self.users_list_directory.render(
                out,
                "sigil_scim_directory_seconds",
                "route=\"users_list\"",
            );
        }
    }
}

/// Process figures from /proc: CPU seconds (user + system, all threads,
/// living and dead), resident memory, open files.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// CPU time in seconds.
    pub cpu_seconds: f64,
    /// Resident set size in bytes.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads [`ProcessStats`] of this process; zeros where /proc says nothing.
pub fn process_stats() -> ProcessStats {
    // USER_HZ is 100 on every Linux architecture Sigil runs on (it is ABI).
    const TICKS_PER_SECOND: f64 = 100.0;
    let mut stats = ProcessStats::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime, stime are 14, 15.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| {
                fields
                    .get(n - 3)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            stats.cpu_seconds = (field(14) + field(15)) as f64 / TICKS_PER_SECOND;
            stats.threads = field(20);
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("VmRSS:")) {
            stats.resident_bytes = line
                .split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024;
        }
    }
    stats.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count() as u64);
    stats
}

/// Appends the process lines (standard Prometheus process metric names).
pub fn render_process(out: &mut String) {
    let stats = process_stats();
    let _ = writeln!(
        out,
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
        stats.cpu_seconds
    );
    let _ = writeln!(
        out,
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}",
        stats.resident_bytes
    );
    let _ = writeln!(
        out,
        "# TYPE process_open_fds gauge\nprocess_open_fds {}",
        stats.open_fds
    );
    let _ = writeln!(
        out,
        "# TYPE process_threads gauge\nprocess_threads {}",
        stats.threads
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_are_read() {
        let stats = process_stats();
        assert!(
            stats.resident_bytes > 0 && stats.open_fds > 0 && stats.threads >= 1,
            "{stats:?}"
        );
        let mut out = String::new();
        render_process(&mut out);
        assert!(out.contains("process_cpu_seconds_total "));
    }
}
