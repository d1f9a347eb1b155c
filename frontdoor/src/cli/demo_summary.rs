//! The plain summary `sigil demo` ends with: this machine, the capacity it
//! measured for EdDSA and ES256 ID tokens at the p99 target, the overhead
//! factor and what it means, and the cores a 50,000 tokens/s deployment
//! needs. Built from the `sigil-perf capacity` reports of the same run
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

/// What the summary is built from: the machine and both algorithms.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// CPUs the run had.
    pub cores: usize,
    /// CPU model name (may be empty).
    pub cpu_model: String,
    /// The p99 target (ms) every step was held to.
    pub p99_target_ms: f64,
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
    /// `more than ~N cores` (the capacity is below the lowest rate tried).
    fn cores_text(&self, cores: usize) -> String {
        match self.cores_for(cores) {
            Some(n) if self.capped => format!("at most ~{} cores", thousands(n as f64)),
            Some(n) => format!("~{} cores", thousands(n as f64)),
            None => {
                let below = Capacity {
                    rate: Some(self.lowest_tried),
                    ..self.clone()
                };
                match below.cores_for(cores) {
                    Some(n) => format!("more than ~{} cores", thousands(n as f64)),
                    None => "an unknown number of cores".to_owned(),
                }
            }
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

/// The summary block, one line each: machine, capacity at the p99 target,
/// overhead factor with its meaning, cores for 50,000 tokens/s, where to
/// read more. Every figure comes from `measured`.
pub fn summary(measured: &Measured) -> String {
    let Measured {
        cores,
        cpu_model,
        p99_target_ms,
        eddsa,
        es256,
    } = measured;
    let machine = if cpu_model.is_empty() {
        format!("machine: {cores} cores")
    } else {
        format!("machine: {cores} cores, {cpu_model}")
    };
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
    [
        "== Sigil on this machine ==".to_owned(),
        machine,
        format!(
            "capacity at p99 <= {} ms: {}, {}",
            trim(*p99_target_ms),
            eddsa.rate_text(),
            es256.rate_text()
        ),
        overhead,
        format!(
            "for {} tokens/s: {} needs {}, {} {} (at this machine's per-core speed)",
            thousands(SIZED_FOR),
            eddsa.algorithm,
            eddsa.cores_text(*cores),
            es256.algorithm,
            es256.cores_text(*cores)
        ),
        "more: docs/BENCHMARKING.md".to_owned(),
    ]
    .join("\n")
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
             capacity at p99 <= 5 ms: EdDSA 7,800 tokens/s, ES256 5,900 tokens/s\n\
             overhead factor 1.9 (EdDSA): each token costs 1.9x a bare AWS-LC signature on one core; the rest is request handling.\n\
             for 50,000 tokens/s: EdDSA needs ~13 cores, ES256 ~17 cores (at this machine's per-core speed)\n\
             more: docs/BENCHMARKING.md"
        );
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
        assert!(text.contains("EdDSA needs more than ~100 cores"), "{text}");
        m.eddsa.lowest_tried = 65.0;
        assert!(
            summary(&m).contains("EdDSA needs more than ~1,539 cores"),
            "{}",
            summary(&m)
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
            "overhead_factor": 3.25, "steps": [{"rate": 1000.0}, {"rate": 500.0}, {"rate": 750.0}],
        });
        let c = Capacity::from_report("EdDSA", &report);
        assert_eq!(c.rate, Some(6000.0));
        assert_eq!(c.lowest_tried, 500.0);
        assert_eq!(c.overhead_factor, Some(3.25));
        assert_eq!(c.cores_for(2), Some(17));
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
