//! `sigil-perf`: load, Monday-morning spike and soak against a Sigil
//! appliance, open-loop with coordinated-omission-corrected latency; and
//! `raw`, the physical signing baseline.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use perf::raw;
use signer::KeySpec;

#[derive(Parser)]
#[command(
    name = "sigil-perf",
    version,
    about = "Load and baseline tool for the Sigil appliance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The physical baseline: AWS-LC signing per algorithm on one core.
    Raw {
        /// Key specs to measure (default: all).
        #[arg(long = "spec", value_name = "SPEC")]
        specs: Vec<String>,
        /// Time per key spec, e.g. 2s, 500ms.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        duration: Duration,
        /// Write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Parses `60s`, `500ms`, `2m`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 60s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unit must be ms, s, m or h")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{text:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Raw {
            specs,
            duration,
            json,
        } => {
            let specs: Vec<KeySpec> = if specs.is_empty() {
                KeySpec::ALL.to_vec()
            } else {
                specs
                    .iter()
                    .map(|s| s.parse().with_context(|| format!("--spec {s}")))
                    .collect::<anyhow::Result<_>>()?
            };
            let mut results = Vec::new();
            eprintln!("{:<12} {:>14} {:>14}", "spec", "signatures/s", "cpu µs/op");
            for spec in specs {
                let r =
                    raw::measure(spec, duration).with_context(|| format!("signing with {spec}"))?;
                eprintln!(
                    "{:<12} {:>14.0} {:>14.2}",
                    r.spec, r.ops_per_sec, r.cpu_us_per_op
                );
                results.push(r);
            }
            let report = serde_json::json!({ "kind": "raw", "threads": 1, "results": results });
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_and_bad_ones_are_explained() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
