//! `sigil-perf`: load, Monday-morning spike and soak against a Sigil
//! appliance, open-loop with coordinated-omission-corrected latency; and
//! `raw`, the physical signing baseline.
#![forbid(unsafe_code)]
// A command-line tool: its output is stdout.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use perf::engine::Mix;
use perf::quic::{self, LoadPlan};
use perf::raw;
use perf::schedule::RateProfile;
use sigil_proto::target::{Endpoints, Target, DEFAULT_DATA_DIR};
use signer::KeySpec;

/// mimalloc, as in `sigil`: the generator's own CPU per request is part
/// of every report (`generator_cpu_us_per_op`), and glibc's malloc, free
/// and consolidation took 8 % of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

#[derive(Args, Clone)]
struct RunArgs {
    /// The appliance's QUIC address; default: the embedded default's (DATA_DIR/endpoints.json).
    #[arg(long, value_name = "HOST:PORT")]
    target: Option<String>,
    /// Caller credentials (cert.pem, key.pem, ca.pem); default: DATA_DIR/credentials/frontend.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// The embedded default's state directory.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The name in the appliance's certificate.
    #[arg(long)]
    server_name: Option<String>,
    /// The node's HTTP address for /metrics (server CPU per operation); default: from endpoints.json.
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<std::net::SocketAddr>,
    /// Tenant.
    #[arg(long, default_value = "acme")]
    tenant: String,
    /// OIDC apps, comma-separated, rotated request by request (a mix of
    /// algorithms); the first one's algorithm is the raw baseline.
    #[arg(long, value_delimiter = ',', default_value = "app-eddsa")]
    app: Vec<String>,
    /// SAML SP (for `saml` in the mix).
    #[arg(long, default_value = "sp-es256")]
    sp: String,
    /// Users to sign in before the run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "alice")]
    users: Vec<String>,
    /// Load a seeded directory instead of --tenant/--users: SEED_TENANTS,SEED_USERS,TENANTS,USERS, e.g.
    /// 19000,1000000,20,200 acts as 200 users spread over the 20 largest seeded tenants by their Zipf sizes.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SEED_TENANTS,SEED_USERS,TENANTS,USERS"
    )]
    seeded: Vec<u64>,
    /// Sessions per user.
    #[arg(long, default_value_t = 16)]
    sessions_per_user: usize,
    /// Operation mix, e.g. id-token=80,saml=10,session-validate=10;
    /// `authenticate` signs --users in with --auth-password,
    /// `authenticate-wrong` sends wrong passwords for unknown users.
    #[arg(long, default_value = "id-token")]
    mix: String,
    /// The password `authenticate` sends for every user (default: the one
    /// `sigil directory seed` gives user1 … user256 of every tenant).
    #[arg(long, default_value = seed_plan::SEED_PASSWORD)]
    auth_password: String,
    /// Generator threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// QUIC connections per thread, requests spread round robin. The node
    /// spreads connections over its workers (SO_REUSEPORT hashes the
    /// client's address), never one connection's requests, so a few
    /// connections can leave a worker idle.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// Streams per connection.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Packets the node may receive from the generator before it must
    /// acknowledge them at once (QUIC ACK frequency extension; its answers
    /// carry the ACKs otherwise); 0: QUIC's default, an ACK for every
    /// second packet.
    #[arg(long, default_value_t = sigil_proto::tls::ACK_THRESHOLD)]
    quic_ack_threshold: u32,
    /// Requests in flight per thread before arrivals count as client_backlog.
    #[arg(long, default_value_t = 16_384)]
    max_in_flight: usize,
    /// Each generator thread wakes at most once per this many µs and sends
    /// everything due by then (each request at most this late; its latency
    /// still counts from its intended time); 0: a wake-up per request.
    #[arg(long, default_value_t = 0)]
    pace_quantum_us: u64,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write SVG charts (throughput, latency percentiles) into this directory.
    #[arg(long, default_value = "perf-charts")]
    charts: PathBuf,
    /// Write the latencies as an HdrHistogram interval log (one interval per second) to this file,
    /// for `sigil-perf merge` (load, monday and soak).
    #[arg(long, value_name = "FILE")]
    hdr_log: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Makes an Ed25519 client key for `introspect`: DIR/client.pk8 and DIR/jwks.json (register with `sigil admin app set-jwks`).
    IntrospectKey {
        /// Where to write them.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Open-loop HTTP load: GET jwks.json (the baseline), then POST oauth2/introspect, at the same rate (issue 19).
    Introspect {
        /// The node's HTTP listener.
        #[arg(long, value_name = "HOST:PORT")]
        http: std::net::SocketAddr,
        /// The node's public URL (assertion audience prefix); default http://HOST:PORT.
        #[arg(long)]
        public_url: Option<String>,
        /// Tenant slug.
        #[arg(long, default_value = "acme")]
        tenant: String,
        /// The app calling (its JWKS holds the key).
        #[arg(long, default_value = "app-es256")]
        app: String,
        /// The client key made by `introspect-key` (client.pk8).
        #[arg(long)]
        key: PathBuf,
        /// An active access token issued to the app.
        #[arg(long)]
        token: String,
        /// Requests per second.
        #[arg(long, default_value_t = 5000.0)]
        rate: f64,
        /// Each phase's length, e.g. 30s.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: Duration,
        /// Generator threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Open-loop load at a constant rate over the QUIC API.
    Load {
        #[command(flatten)]
        run: RunArgs,
        /// Requests per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Run length, e.g. 60s.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Hours at a rate, sampling the server's RSS, open files and CPU; flags growth and latency drift.
    Soak {
        #[command(flatten)]
        run: RunArgs,
        /// Requests per second.
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        /// Run length, e.g. 2h.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        duration: Duration,
        /// How often to sample the server's /metrics.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        sample: Duration,
        /// Growth (first tenth vs last tenth of the run) above this fraction is flagged.
        #[arg(long, default_value_t = 0.2)]
        tolerance: f64,
    },
    /// Monday 9 AM: base rate, a ramp to the peak, the peak held, back to base.
    Monday {
        #[command(flatten)]
        run: RunArgs,
        /// Steady rate.
        #[arg(long, default_value_t = 8000.0)]
        base: f64,
        /// Peak rate (5-10x the base on a real Monday).
        #[arg(long, default_value_t = 50000.0)]
        peak: f64,
        /// Time at base before the spike.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        before: Duration,
        /// Length of each ramp.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        ramp: Duration,
        /// Time at the peak.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        hold: Duration,
        /// Time at base after the spike.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        after: Duration,
    },
    /// The highest rate sustained with p99 within a target: short steps at rising rates, one bisection.
    Capacity {
        #[command(flatten)]
        run: RunArgs,
        /// First step's rate (requests/s).
        #[arg(long, default_value_t = 1000.0)]
        start: f64,
        /// Each step's rate is the previous one's times this.
        #[arg(long, default_value_t = 2.0)]
        factor: f64,
        /// Highest rate tried.
        #[arg(long, default_value_t = 200_000.0)]
        max: f64,
        /// Length of each step.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        step: Duration,
        /// A step passes with its p99 within this many milliseconds (docs/design.md: 5).
        #[arg(long, default_value_t = 5.0)]
        p99_ms: f64,
        /// ...and at most this fraction of its requests refused or failed.
        #[arg(long, default_value_t = 0.001)]
        max_error_rate: f64,
        /// Do not try once between the last passing and the first failing rate.
        #[arg(long)]
        no_bisect: bool,
        /// A failing step's rate counts as failed at once (no second try).
        #[arg(long)]
        no_retry: bool,
        /// Rate of the step that measures the latency floor before the search (0: none; the target is then never raised).
        #[arg(long, default_value_t = 200.0)]
        floor_rate: f64,
    },
    /// Combines the --hdr-log files of runs made at once (e.g. from several generator machines) into one report.
    Merge {
        /// Interval logs written by --hdr-log.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Write the merged report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
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

fn plan(run: RunArgs, profile: RateProfile, name: &str) -> anyhow::Result<LoadPlan> {
    let target = Target {
        target: run.target.clone(),
        cert_dir: run.cert_dir.clone(),
        data_dir: run.data_dir.clone(),
        server_name: run.server_name.clone(),
        anonymous: false,
    };
    let metrics = match run.metrics {
        Some(address) => Some(address),
        None if run.target.is_none() => Endpoints::load(&run.data_dir).ok().map(|e| e.http),
        None => None,
    };
    let tenants = match run.seeded.as_slice() {
        [seed_tenants, seed_users, tenants, users] => quic::seeded_population(
            *seed_tenants,
            *seed_users,
            *tenants as usize,
            *users as usize,
        ),
        [] => vec![(run.tenant.clone(), run.users.clone())],
        _ => {
            anyhow::bail!("--seeded takes four numbers: SEED_TENANTS,SEED_USERS,TENANTS,USERS")
        }
    };
    Ok(LoadPlan {
        target,
        auth_users: quic::auth_users(&tenants, !run.seeded.is_empty()),
        password: run.auth_password,
        tenants,
        apps: run.app,
        sp: run.sp,
        sessions_per_user: run.sessions_per_user,
        profile,
        mix: Mix::parse(&run.mix).map_err(|e| anyhow::anyhow!("--mix: {e}"))?,
        mix_text: run.mix,
        threads: run.threads,
        connections: usize::from(run.connections),
        streams: run.streams,
        ack_threshold: run.quic_ack_threshold,
        max_in_flight: run.max_in_flight,
        pace_quantum: Duration::from_micros(run.pace_quantum_us),
        metrics,
        profile_name: name.to_owned(),
        charts_dir: Some(run.charts),
        hdr_log: run.hdr_log,
        progress: true,
    })
}

fn finish(
    report: &perf::report::Report,
    json: Option<&PathBuf>,
    hdr_log: Option<&PathBuf>,
) -> anyhow::Result<()> {
    let l = &report.latency_us;
    println!(
        "{} against {} ({}), {:.0} s",
        report.profile, report.target, report.mix, report.duration_s
    );
    println!(
        "  intended {:>9.0}/s   achieved {:>9.0}/s   ok {} of {}",
        report.intended_rps, report.achieved_rps, report.ok, report.sent
    );
    println!(
        "  latency µs (from intended send): p50 {}  p99 {}  p99.9 {}  max {}",
        l.p50, l.p99, l.p999, l.max
    );
    if let Some(r) = &report.rejection_latency_us {
        println!(
            "  refusals answered in µs: p50 {}  p99 {}  max {}",
            r.p50, r.p99, r.max
        );
    }
    if let Some(r) = &report.refused_latency_us {
        println!(
            "  of which the node's overloaded/rate_limited, µs: p50 {}  p99 {}  max {}",
            r.p50, r.p99, r.max
        );
    }
    println!(
        "  generator send lag µs: p50 {}  p99 {}{}",
        report.send_lag_us.p50,
        report.send_lag_us.p99,
        report
            .generator_cpu_us_per_op
            .map_or(String::new(), |us| format!(
                "   generator CPU {us:.1} µs/request"
            ))
    );
    println!(
        "  errors: {}",
        if report.errors.is_empty() {
            "none".to_owned()
        } else {
            format!("{:?}", report.errors)
        }
    );
    if let (Some(server), Some(raw), Some(factor)) = (
        report.server_cpu_us_per_op,
        report.raw_cpu_us_per_op,
        report.overhead_factor,
    ) {
        println!("  server CPU {server:.1} µs/op vs raw signing {raw:.1} µs/op: overhead factor {factor:.2}");
    }
    for chart in &report.charts {
        println!("  chart: {chart}");
    }
    if let Some(path) = hdr_log {
        println!("  hdr log: {}", path.display());
    }
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  report: {}", path.display());
    }
    Ok(())
}

/// What `capacity` prints on stdout.
fn capacity_summary(report: &perf::capacity::CapacityReport) -> String {
    let found = match (report.capacity_rps, report.capped) {
        (Some(rate), false) => format!("{rate:.0}/s"),
        (Some(rate), true) => format!("at least {rate:.0}/s (the --max tried)"),
        (None, _) => format!(
            "below the lowest rate tried ({:.0}/s)",
            report
                .steps
                .iter()
                .filter(|s| s.phase != "floor")
                .map(|s| s.rate)
                .reduce(f64::min)
                .unwrap_or(0.0)
        ),
    };
    let mut text = format!(
        "capacity against {} ({}, {}): {found} with p99 <= {} ms and errors <= {:.2} %, on {} cores",
        report.target,
        report.mix,
        report.apps.join(","),
        report.effective_p99_target_ms,
        report.max_error_rate * 100.0,
        report.cores
    );
    if let (true, Some(floor)) = (report.target_raised, report.floor_p99_ms) {
        text.push_str(&format!(
            "\n  the target was raised from {} ms: p99 was {floor:.1} ms at {:.0}/s already (the latency floor; audit sync p99 {})",
            report.p99_target_ms,
            report.floor_rps.unwrap_or(0.0),
            report
                .floor_audit_sync_p99_ms
                .map_or("unknown".to_owned(), |ms| format!("<= {ms} ms"))
        ));
    }
    if let (Some(server), Some(raw), Some(factor)) = (
        report.server_cpu_us_per_op,
        report.raw_cpu_us_per_op,
        report.overhead_factor,
    ) {
        text.push_str(&format!(
            "\n  at that rate: server CPU {server:.1} µs/op vs raw signing {raw:.1} µs/op: overhead factor {factor:.2}"
        ));
    }
    text
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::IntrospectKey { out } => {
            let (pkcs8, jwks) = perf::http::client_key().map_err(anyhow::Error::msg)?;
            std::fs::create_dir_all(&out)?;
            std::fs::write(out.join("client.pk8"), pkcs8)?;
            std::fs::write(out.join("jwks.json"), jwks)?;
            println!("{}", out.join("jwks.json").display());
        }
        Command::Introspect {
            http,
            public_url,
            tenant,
            app,
            key,
            token,
            rate,
            duration,
            threads,
        } => {
            anyhow::ensure!(rate > 0.0, "--rate must be positive");
            let plan = perf::http::IntrospectPlan {
                http,
                public_url: public_url.unwrap_or_else(|| format!("http://{http}")),
                tenant,
                app,
                key: std::fs::read(&key).with_context(|| key.display().to_string())?,
                token,
                rate,
                duration,
                threads,
            };
            for phase in perf::http::run(&plan).map_err(anyhow::Error::msg)? {
                let l = &phase.latency;
                println!(
                    "{:<10} {:.0}/s for {:.1} s: sent {}, ok {}, errors {:?}; latency from intended send (us): p50 {} p90 {} p99 {} p99.9 {} max {}",
                    phase.name,
                    rate,
                    phase.elapsed.as_secs_f64(),
                    phase.sent,
                    phase.ok,
                    phase.errors,
                    l.p50,
                    l.p90,
                    l.p99,
                    l.p999,
                    l.max
                );
            }
        }
        Command::Load {
            run,
            rate,
            duration,
        } => {
            anyhow::ensure!(rate > 0.0, "--rate must be positive");
            let json = run.json.clone();
            let hdr_log = run.hdr_log.clone();
            let report = quic::run(&plan(
                run,
                RateProfile::Constant { rate, duration },
                "load",
            )?)?;
            finish(&report, json.as_ref(), hdr_log.as_ref())?;
        }
        Command::Soak {
            run,
            rate,
            duration,
            sample,
            tolerance,
        } => {
            anyhow::ensure!(rate > 0.0, "--rate must be positive");
            let json = run.json.clone();
            let hdr_log = run.hdr_log.clone();
            let plan = plan(run, RateProfile::Constant { rate, duration }, "soak")?;
            let metrics = plan
                .metrics
                .context("soak needs the server's /metrics: pass --metrics HOST:PORT")?;
            let sampler = perf::soak::Sampler::start(metrics, sample);
            let mut report = quic::run(&plan)?;
            let summary = sampler.finish(&report.timeline, tolerance);
            for flag in &summary.flags {
                println!("  FLAG: {flag}");
            }
            report.soak = Some(summary);
            finish(&report, json.as_ref(), hdr_log.as_ref())?;
        }
        Command::Monday {
            run,
            base,
            peak,
            before,
            ramp,
            hold,
            after,
        } => {
            anyhow::ensure!(
                base > 0.0 && peak >= base,
                "--peak must be at least --base, both positive"
            );
            let json = run.json.clone();
            let hdr_log = run.hdr_log.clone();
            let report = quic::run(&plan(
                run,
                RateProfile::Monday {
                    base,
                    peak,
                    before,
                    ramp,
                    hold,
                    after,
                },
                "monday",
            )?)?;
            finish(&report, json.as_ref(), hdr_log.as_ref())?;
        }
        Command::Capacity {
            run,
            start,
            factor,
            max,
            step,
            p99_ms,
            max_error_rate,
            no_bisect,
            no_retry,
            floor_rate,
        } => {
            anyhow::ensure!(
                start > 0.0 && max >= start,
                "--start must be positive and --max at least --start"
            );
            anyhow::ensure!(factor > 1.0, "--factor must be above 1");
            anyhow::ensure!(
                floor_rate >= 0.0 && floor_rate.is_finite(),
                "--floor-rate must be 0 (no floor step) or a rate in requests/s"
            );
            anyhow::ensure!(
                p99_ms > 0.0 && (0.0..1.0).contains(&max_error_rate),
                "--p99-ms must be positive and --max-error-rate in [0, 1)"
            );
            anyhow::ensure!(
                run.hdr_log.is_none(),
                "--hdr-log is for load, monday and soak: a capacity search's steps write no log"
            );
            let json = run.json.clone();
            let search = perf::capacity::Search {
                start,
                factor,
                max,
                step,
                p99_target_us: (p99_ms * 1000.0).round() as u64,
                max_error_rate,
                bisect: !no_bisect,
                floor_rate: (floor_rate > 0.0).then_some(floor_rate),
                retry: !no_retry,
            };
            let plan = plan(
                run,
                RateProfile::Constant {
                    rate: start,
                    duration: step,
                },
                "capacity",
            )?;
            let report = perf::capacity::search(&plan, &search)?;
            println!("{}", capacity_summary(&report));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("  report: {}", path.display());
            }
        }
        Command::Merge { files, json } => {
            let logs = files
                .iter()
                .map(|f| perf::hdrlog::read(f))
                .collect::<Result<Vec<_>, _>>()?;
            let merged = perf::hdrlog::merge(&logs)?;
            let l = &merged.latency_us;
            println!(
                "merged {} logs over the {:.0} s they share: {} successes, {:.0}/s",
                merged.files.len(),
                merged.common_span_s,
                merged.count,
                merged.rate_rps
            );
            println!(
                "  latency µs (from intended send): p50 {}  p99 {}  p99.9 {}  max {}",
                l.p50, l.p99, l.p999, l.max
            );
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&merged)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("  report: {}", path.display());
            }
        }
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
