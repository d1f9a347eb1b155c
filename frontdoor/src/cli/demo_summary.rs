//! The plain summary `sigil demo` ends with: this machine, its latency
//! floor (and, when the floor is above the p99 target, the target the
//! capacity was measured at instead), the capacity it measured for EdDSA
//! and ES256 ID tokens, the overhead factor and what it means, and the
//! cores a 50,000 tokens/s deployment needs. Built from the `sigil-perf capacity` reports of the same run
//! ([`Capacity::from_report`]) by a pure function ([`summary`]).

use serde_json::Value;

/// The rate the README leads with, that the summary sizes for.
pub const SIZED_FOR: f64 = 50_000.0;

/// One algorithm's capacity, as `sigil-perf capacity` measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// The algorithm, e.g. `EdDSA`.
    pub algorithm: String,
    /// The highest rate that met the target (tokens/s); `None` when no
    /// step did.
    pub rate: Option<f64>,
    /// The lowest rate tried (what "below" means when `rate` is `None`).
    pub lowest_tried: f64,
    /// Whether the search stopped at its maximum without a failure (the
    /// capacity is at least `rate`).
    pub capped: bool,
    /// Server CPU per token ÷ raw AWS-LC CPU per signature, at that rate.
    pub overhead_factor: Option<f64>,
}

/// The latency floor the first capacity search measured: its p99 at a low
/// rate (the lowest of the floor steps).
#[derive(Debug, Clone, PartialEq)]
pub struct Floor {
    /// The floor step's rate (tokens/s).
    pub rate: f64,
    /// Its p99 (ms).
    pub p99_ms: f64,
    /// The p99 of the node's audit syncs in that step (ms).
    pub audit_sync_p99_ms: Option<f64>,
    /// sigil-perf's verdict: whether those syncs explain the floor.
    pub explained_by_disk: Option<bool>,
    /// The target the capacity steps were held to (ms): the p99 target, or
    /// the floor plus it when the floor was above it.
    pub held_to_ms: f64,
}

impl Floor {
    /// Reads the floor fields of a `sigil-perf capacity --json` report
    /// (docs/perf.md); `None` when it ran no floor step.
    pub fn from_report(report: &Value) -> Option<Floor> {
        Some(Floor {
            rate: report["floor_rps"].as_f64()?,
            p99_ms: report["floor_p99_ms"].as_f64()?,
            audit_sync_p99_ms: report["floor_audit_sync_p99_ms"].as_f64(),
            explained_by_disk: report["floor_explained_by_disk"].as_bool(),
            held_to_ms: report["effective_p99_target_ms"].as_f64()?,
        })
    }
}

/// What the summary is built from: the machine and both algorithms.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// CPUs the run had.
    pub cores: usize,
    /// CPU model name (may be empty).
    pub cpu_model: String,
    /// The p99 target (ms) asked for.
    pub p99_target_ms: f64,
    /// The latency floor, when the run measured one; both algorithms'
    /// steps were held to its `held_to_ms`.
    pub floor: Option<Floor>,
    /// EdDSA ID tokens.
    pub eddsa: Capacity,
    /// ES256 ID tokens.
    pub es256: Capacity,
}

impl Capacity {
    /// Reads a `sigil-perf capacity --json` report (docs/perf.md).
    pub fn from_report(algorithm: &str, report: &Value) -> Capacity {
        Capacity {
            algorithm: algorithm.to_owned(),
            rate: report["capacity_rps"].as_f64(),
            lowest_tried: report["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|step| step["phase"] != "floor")
                .filter_map(|step| step["rate"].as_f64())
                .reduce(f64::min)
                .unwrap_or(0.0),
            capped: report["capped"].as_bool().unwrap_or(false),
            overhead_factor: report["overhead_factor"].as_f64(),
        }
    }

    /// Cores needed for [`SIZED_FOR`] tokens/s: 50,000 ÷ (capacity ÷
    /// cores of this machine), rounded up.
    pub fn cores_for(&self, cores: usize) -> Option<u64> {
        let per_core = self.rate? / cores.max(1) as f64;
        (per_core > 0.0).then(|| (SIZED_FOR / per_core).ceil() as u64)
    }

    fn rate_text(&self) -> String {
        match (self.rate, self.capped) {
            (Some(rate), false) => format!("{} {} tokens/s", self.algorithm, thousands(rate)),
            (Some(rate), true) => {
                format!("{} at least {} tokens/s", self.algorithm, thousands(rate))
            }
            (None, _) => format!(
                "{} below {} tokens/s",
                self.algorithm,
                thousands(self.lowest_tried)
            ),
        }
    }

    /// `~13 cores`, `at most ~13 cores` (capped), or, when no step passed,
    /// that there is no figure to derive it from.
    fn cores_text(&self, cores: usize) -> String {
        match self.cores_for(cores) {
            Some(n) if self.capped => format!("at most ~{} cores", thousands(n as f64)),
            Some(n) => format!("~{} cores", thousands(n as f64)),
            None => "an unknown number of cores (no rate met the target)".to_owned(),
        }
    }
}

/// `12345.6` as `12,346`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The summary block, one line each: machine, latency floor, capacity at
/// the target the steps were held to, overhead factor with its meaning,
/// cores for 50,000 tokens/s, where to read more. Every figure comes from
/// `measured`.
pub fn summary(measured: &Measured) -> String {
    let Measured {
        cores,
        cpu_model,
        p99_target_ms,
        floor,
        eddsa,
        es256,
    } = measured;
    let held_to = floor.as_ref().map_or(*p99_target_ms, |f| f.held_to_ms);
    let machine = if cpu_model.is_empty() {
        format!("machine: {cores} cores")
    } else {
        format!("machine: {cores} cores, {cpu_model}")
    };
    let floor_line = floor.as_ref().map(|f| floor_text(f, *p99_target_ms));
    let overhead = match eddsa.overhead_factor {
        Some(f) => format!(
            "overhead factor {f:.1} ({}): each token costs {f:.1}x a bare AWS-LC signature on one core; the rest is request handling.",
            eddsa.algorithm
        ),
        None if eddsa.rate.is_none() => format!(
            "overhead factor ({}): not measured (it is taken at the capacity, and no step met the target).",
            eddsa.algorithm
        ),
        None => format!(
            "overhead factor ({}): not measured (the node's /metrics could not be read).",
            eddsa.algorithm
        ),
    };
    [Some("== Sigil on this machine ==".to_owned()), Some(machine), floor_line]
        .into_iter()
        .flatten()
        .chain([
            format!(
                "capacity at p99 <= {} ms: {}, {}",
                trim(held_to),
                eddsa.rate_text(),
                es256.rate_text()
            ),
            overhead,
            format!(
                "for {} tokens/s at p99 <= {} ms: {} needs {}, {} {} (at this machine's per-core speed)",
                thousands(SIZED_FOR),
                trim(held_to),
                eddsa.algorithm,
                eddsa.cores_text(*cores),
                es256.algorithm,
                es256.cores_text(*cores)
            ),
            "more: docs/BENCHMARKING.md".to_owned(),
        ])
        .collect::<Vec<_>>()
        .join("\n")
}

/// The latency floor line: the floor and the target; when the floor is
/// above the target, what explains it (the audit syncs every token waits
/// for, when their p99 is at least half the floor; otherwise mostly a busy
/// machine) and the target the capacity was measured at instead.
fn floor_text(floor: &Floor, p99_target_ms: f64) -> String {
    let Floor {
        rate,
        p99_ms,
        audit_sync_p99_ms,
        explained_by_disk,
        held_to_ms,
    } = floor;
    let head = format!(
        "latency floor: p99 {p99_ms:.1} ms at {} tokens/s",
        thousands(*rate)
    );
    if *held_to_ms <= p99_target_ms {
        let sync = audit_sync_p99_ms.map_or(String::new(), |ms| {
            format!(", audit sync p99 <= {} ms", trim(ms))
        });
        return format!(
            "{head}{sync}, within the {} ms target.",
            trim(p99_target_ms)
        );
    }
    let cause = match (audit_sync_p99_ms, explained_by_disk) {
        (Some(sync), Some(true)) => format!(
            "the audit syncs every token waits for had p99 <= {} ms: this disk's fdatasync is that slow (a faster disk for data_dir lowers it)",
            trim(*sync)
        ),
        (Some(sync), _) => format!(
            "the audit syncs every token waits for had p99 <= {} ms only, so most of it is this machine being busy (other work on its cores)",
            trim(*sync)
        ),
        (None, _) => "the node's audit sync times could not be read".to_owned(),
    };
    format!(
        "{head}, above the {} ms target; {cause}. Capacity is measured at p99 <= {} ms (floor + {} ms) instead.",
        trim(p99_target_ms),
        trim(*held_to_ms),
        trim(p99_target_ms)
    )
}

/// `5.0` as `5`, `2.5` as `2.5`.
fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured() -> Measured {
        Measured {
            cores: 2,
            cpu_model: "AMD EPYC 7B13".into(),
            p99_target_ms: 5.0,
            floor: Some(Floor {
                rate: 200.0,
                p99_ms: 1.24,
                audit_sync_p99_ms: Some(1.0),
                explained_by_disk: Some(true),
                held_to_ms: 5.0,
            }),
            eddsa: Capacity {
                algorithm: "EdDSA".into(),
                rate: Some(7_800.0),
                lowest_tried: 1_000.0,
                capped: false,
                overhead_factor: Some(1.93),
            },
            es256: Capacity {
                algorithm: "ES256".into(),
                rate: Some(5_900.0),
                lowest_tried: 1_000.0,
                capped: false,
                overhead_factor: Some(2.4),
            },
        }
    }

    #[test]
    fn the_summary_says_machine_capacity_overhead_and_cores() {
        assert_eq!(
            summary(&measured()),
            "== Sigil on this machine ==\n\
             machine: 2 cores, AMD EPYC 7B13\n\
             latency floor: p99 1.2 ms at 200 tokens/s, audit sync p99 <= 1 ms, within the 5 ms target.\n\
             capacity at p99 <= 5 ms: EdDSA 7,800 tokens/s, ES256 5,900 tokens/s\n\
             overhead factor 1.9 (EdDSA): each token costs 1.9x a bare AWS-LC signature on one core; the rest is request handling.\n\
             for 50,000 tokens/s at p99 <= 5 ms: EdDSA needs ~13 cores, ES256 ~17 cores (at this machine's per-core speed)\n\
             more: docs/BENCHMARKING.md"
        );
    }

    #[test]
    fn a_floor_above_the_target_is_explained_and_the_figures_follow_it() {
        let mut m = measured();
        m.floor = Some(Floor {
            rate: 200.0,
            p99_ms: 12.34,
            audit_sync_p99_ms: Some(10.0),
            explained_by_disk: Some(true),
            held_to_ms: 18.0,
        });
        let text = summary(&m);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            "latency floor: p99 12.3 ms at 200 tokens/s, above the 5 ms target; the audit syncs every token waits for \
             had p99 <= 10 ms: this disk's fdatasync is that slow (a faster disk for data_dir lowers it). \
             Capacity is measured at p99 <= 18 ms (floor + 5 ms) instead."
        );
        assert!(
            lines[3].starts_with("capacity at p99 <= 18 ms: EdDSA 7,800 tokens/s"),
            "{text}"
        );
        assert!(
            lines[5].starts_with("for 50,000 tokens/s at p99 <= 18 ms: EdDSA needs ~13 cores"),
            "{text}"
        );
        // Syncs far below the floor: the machine, not the disk.
        m.floor = Some(Floor {
            rate: 200.0,
            p99_ms: 88.8,
            audit_sync_p99_ms: Some(5.0),
            explained_by_disk: Some(false),
            held_to_ms: 94.0,
        });
        let text = summary(&m);
        assert!(
            text.contains("had p99 <= 5 ms only, so most of it is this machine being busy"),
            "{text}"
        );
        m.floor = Some(Floor {
            rate: 200.0,
            p99_ms: 88.8,
            audit_sync_p99_ms: None,
            explained_by_disk: None,
            held_to_ms: 94.0,
        });
        assert!(
            summary(&m).contains("the node's audit sync times could not be read. Capacity is measured at p99 <= 94 ms"),
            "{}",
            summary(&m)
        );
        // No floor step: no floor line, the target as asked.
        m.floor = None;
        let text = summary(&m);
        assert!(!text.contains("latency floor"), "{text}");
        assert!(text.contains("capacity at p99 <= 5 ms:"), "{text}");
    }

    #[test]
    fn missing_and_capped_figures_are_said_as_such() {
        let mut m = measured();
        m.eddsa.rate = None;
        m.eddsa.overhead_factor = None;
        m.es256.capped = true;
        let text = summary(&m);
        assert!(text.contains("EdDSA below 1,000 tokens/s"), "{text}");
        assert!(text.contains("ES256 at least 5,900 tokens/s"), "{text}");
        // No cores figure is made up from a rate that was not met.
        assert!(
            text.contains("EdDSA needs an unknown number of cores (no rate met the target)"),
            "{text}"
        );
        assert!(text.contains("ES256 at most ~17 cores"), "{text}");
        assert!(
            text.contains("overhead factor (EdDSA): not measured (it is taken at the capacity, and no step met the target)."),
            "{text}"
        );
        m.eddsa.rate = Some(1000.0);
        let text = summary(&m);
        assert!(
            text.contains("not measured (the node's /metrics could not be read)."),
            "{text}"
        );
        assert_eq!(text.lines().last(), Some("more: docs/BENCHMARKING.md"));
    }

    #[test]
    fn reports_are_read_by_their_documented_fields() {
        let report = serde_json::json!({
            "kind": "capacity", "cores": 2, "capacity_rps": 6000.0, "capped": false,
            "overhead_factor": 3.25,
            "steps": [{"rate": 200.0, "phase": "floor"}, {"rate": 1000.0, "phase": "step"},
                      {"rate": 500.0, "phase": "down"}, {"rate": 750.0, "phase": "bisect"}],
            "floor_rps": 200.0, "floor_p99_ms": 12.3, "floor_audit_sync_p99_ms": 10.0,
            "floor_explained_by_disk": true, "effective_p99_target_ms": 18.0, "p99_target_ms": 5.0, "target_raised": true,
        });
        let c = Capacity::from_report("EdDSA", &report);
        assert_eq!(c.rate, Some(6000.0));
        // The floor step is not a rate the search tried.
        assert_eq!(c.lowest_tried, 500.0);
        assert_eq!(
            Floor::from_report(&report),
            Some(Floor {
                rate: 200.0,
                p99_ms: 12.3,
                audit_sync_p99_ms: Some(10.0),
                explained_by_disk: Some(true),
                held_to_ms: 18.0
            })
        );
        assert_eq!(
            Floor::from_report(&serde_json::json!({"floor_rps": null})),
            None
        );
        assert_eq!(c.overhead_factor, Some(3.25));
        assert_eq!(c.cores_for(2), Some(17));
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
