//! The JSON report of a run (schema in docs/perf.md) and the server figures
//! it is built from.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Serialize;

use crate::raw::RawResult;
use crate::record::{Percentiles, SecondPoint};

/// The server's process figures, read from its `/metrics` (the standard
/// Prometheus process collector names), and its audit sync times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerUsage {
    /// `process_cpu_seconds_total`.
    pub cpu_seconds: f64,
    /// `process_resident_memory_bytes`.
    pub resident_bytes: f64,
    /// `process_open_fds`.
    pub open_fds: f64,
    /// `sigil_audit_sync_seconds` (empty from a node without it).
    #[serde(skip)]
    pub audit_sync: Buckets,
}

/// A Prometheus histogram's cumulative buckets, as scraped: (upper bound
/// in seconds, observations at or below it), the last bound `+Inf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(pub Vec<(f64, u64)>);

impl Buckets {
    /// Reads the unlabelled histogram `name` (its `name_bucket{le="…"}`
    /// lines) from Prometheus text.
    pub fn read(text: &str, name: &str) -> Buckets {
        let prefix = format!("{name}_bucket{{le=\"");
        Buckets(
            text.lines()
                .filter_map(|line| {
                    let (bound, count) = line.strip_prefix(&prefix)?.split_once("\"} ")?;
                    let bound = match bound {
                        "+Inf" => f64::INFINITY,
                        b => b.parse().ok()?,
                    };
                    Some((bound, count.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// The `q` quantile (0..1) of the observations made between `earlier`
    /// and these buckets, as the upper bound (seconds) of the bucket it
    /// falls in; `None` when there were none, or the buckets differ.
    pub fn quantile_since(&self, earlier: &Buckets, q: f64) -> Option<f64> {
        let before = |i: usize, bound: f64| match earlier.0.get(i) {
            Some(&(b, n)) if b == bound => Some(n),
            None if earlier.0.is_empty() => Some(0),
            _ => None,
        };
        let deltas: Vec<(f64, u64)> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, &(bound, n))| Some((bound, n.checked_sub(before(i, bound)?)?)))
            .collect::<Option<_>>()?;
        let total = deltas.last()?.1;
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        deltas
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map(|(bound, _)| *bound)
    }
}

/// Why the server's figures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The HTTP exchange failed.
    #[error("reading http://{addr}/metrics: {source}")]
    Io {
        /// The metrics address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The answer was not a 200 with the process metrics.
    #[error("http://{addr}/metrics: {what}")]
    Answer {
        /// The metrics address.
        addr: SocketAddr,
        /// What was wrong.
        what: String,
    },
}

/// Reads the value of an unlabelled sample `name` from Prometheus text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Fetches `/metrics` from `addr` and reads the process figures.
///
/// # Errors
/// [`ScrapeError`] when the server cannot be reached or lacks the figures.
pub fn scrape(addr: SocketAddr) -> Result<ServerUsage, ScrapeError> {
    let io = |source| ScrapeError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: sigil\r\nConnection: close\r\n\r\n")
        .map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    let answer = |what: &str| ScrapeError::Answer {
        addr,
        what: what.to_owned(),
    };
    if !response.starts_with("HTTP/1.1 200") {
        return Err(answer("status is not 200"));
    }
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(ServerUsage {
        cpu_seconds: sample(body, "process_cpu_seconds_total")
            .ok_or_else(|| answer("no process_cpu_seconds_total"))?,
        resident_bytes: sample(body, "process_resident_memory_bytes").unwrap_or(0.0),
        open_fds: sample(body, "process_open_fds").unwrap_or(0.0),
        audit_sync: Buckets::read(body, "sigil_audit_sync_seconds"),
    })
}

/// What a run produced. Field names are a contract (docs/perf.md).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `load`, `monday` or `soak`.
    pub profile: String,
    /// The appliance address.
    pub target: String,
    /// The operation mix as given.
    pub mix: String,
    /// Planned run length (s).
    pub duration_s: f64,
    /// Requests scheduled.
    pub sent: u64,
    /// Successful answers.
    pub ok: u64,
    /// Mean intended rate over the run (requests/s).
    pub intended_rps: f64,
    /// Successful answers per second over the run.
    pub achieved_rps: f64,
    /// Latency of successes from the intended send time (µs).
    pub latency_us: Percentiles,
    /// How fast refusals and failures came back (µs), if there were any.
    pub rejection_latency_us: Option<Percentiles>,
    /// How fast the node's refusals of excess load (`overloaded`,
    /// `rate_limited`) came back (µs), if there were any.
    pub refused_latency_us: Option<Percentiles>,
    /// How late the generator sent, against the schedule (µs).
    pub send_lag_us: Percentiles,
    /// The generator's own CPU time (user + system, every thread) per
    /// request sent (µs): what the load cost the machine it ran on.
    pub generator_cpu_us_per_op: Option<f64>,
    /// Errors by protocol code (and `client_backlog`, `no_answer`,
    /// `transport` from the client side).
    pub errors: BTreeMap<String, u64>,
    /// Server CPU time per successful operation (µs), from its `/metrics`.
    pub server_cpu_us_per_op: Option<f64>,
    /// Raw signing CPU time per signature of the same algorithm, this run (µs).
    pub raw_cpu_us_per_op: Option<f64>,
    /// `server_cpu_us_per_op / raw_cpu_us_per_op`.
    pub overhead_factor: Option<f64>,
    /// The p99 of the node's audit syncs (write + fdatasync of a batch)
    /// during the run, in ms: the upper bound of its `/metrics` histogram
    /// bucket. Every token waits for one, so it is a floor under the p99.
    pub audit_sync_p99_ms: Option<f64>,
    /// The raw baseline measured at the start of this run.
    pub raw: Vec<RawResult>,
    /// Server figures before and after.
    pub server_before: Option<ServerUsage>,
    /// Server figures after.
    pub server_after: Option<ServerUsage>,
    /// One point per second.
    pub timeline: Vec<SecondPoint>,
    /// Chart files written.
    pub charts: Vec<String>,
    /// The soak profile's verdict (RSS, open files, latency drift).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<crate::soak::SoakSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_exactly_by_name() {
        let text = "# HELP process_cpu_seconds_total CPU\nprocess_cpu_seconds_total 12.5\nprocess_cpu_seconds_total_extra 9\nprocess_open_fds 42\n";
        assert_eq!(sample(text, "process_cpu_seconds_total"), Some(12.5));
        assert_eq!(sample(text, "process_open_fds"), Some(42.0));
        assert_eq!(sample(text, "process_resident_memory_bytes"), None);
    }

    #[test]
    fn a_quantile_is_taken_over_the_observations_between_two_scrapes() {
        let scrape = |counts: [u64; 4]| {
            let text = format!(
                "# TYPE s histogram\ns_bucket{{le=\"0.001\"}} {}\ns_bucket{{le=\"0.005\"}} {}\n\
                 s_bucket{{le=\"0.025\"}} {}\ns_bucket{{le=\"+Inf\"}} {}\ns_sum 1\ns_count {}\n",
                counts[0], counts[1], counts[2], counts[3], counts[3]
            );
            Buckets::read(&text, "s")
        };
        let before = scrape([10, 10, 10, 10]);
        assert_eq!(before.0.len(), 4);
        assert_eq!(before.0[3], (f64::INFINITY, 10));
        // 100 new observations: 90 under 1 ms, 9 under 5 ms, 1 under 25 ms.
        let after = scrape([100, 109, 110, 110]);
        assert_eq!(after.quantile_since(&before, 0.5), Some(0.001));
        assert_eq!(after.quantile_since(&before, 0.99), Some(0.005));
        assert_eq!(after.quantile_since(&before, 1.0), Some(0.025));
        // Nothing new, no scrape before it, or different buckets.
        assert_eq!(before.quantile_since(&before, 0.99), None);
        assert_eq!(after.quantile_since(&Buckets::default(), 0.99), Some(0.005));
        assert_eq!(after.quantile_since(&Buckets(vec![(2.0, 1)]), 0.99), None);
        assert_eq!(
            Buckets::read("process_open_fds 3\n", "s"),
            Buckets::default()
        );
    }
}
