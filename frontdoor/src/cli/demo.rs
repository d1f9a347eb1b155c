//! `sigil demo`: the appliance on the embedded defaults with a short
//! Monday-morning load from `sigil-perf` against it, then a capacity phase
//! (`sigil-perf capacity` for EdDSA and ES256 ID tokens at the p99 target
//! of docs/design.md); prints the report, where the charts are, and last
//! the plain summary of [`super::demo_summary`].

use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use super::serve;
use crate::config::Config;
use sigil_proto::target::credentials_dir;

/// The shape of the demo's load.
#[derive(Debug, Clone, Copy)]
pub struct DemoLoad {
    /// Whole run.
    pub duration: Duration,
    /// Steady rate.
    pub base: f64,
    /// Peak rate.
    pub peak: f64,
    /// Nodes in the loopback cluster.
    pub nodes: usize,
}

/// The configuration of demo node `n` (from 1) of `count`: ports 4433+10k,
/// 8080+k, cluster 4434+10k; one shared state directory.
pub fn node_config(base: &Config, n: usize, count: usize) -> Config {
    let mut config = base.clone();
    let port = |start: u16, step: u16, k: usize| start + step * (k as u16 - 1);
    let ip = base.listen.quic.ip();
    config.node = format!("node-{n}");
    config.listen.quic = std::net::SocketAddr::new(ip, port(base.listen.quic.port(), 10, n));
    config.listen.http =
        std::net::SocketAddr::new(base.listen.http.ip(), port(base.listen.http.port(), 1, n));
    config.cluster.listen = std::net::SocketAddr::new(ip, port(base.cluster.listen.port(), 10, n));
    let control = base.listen.control_listen;
    if control.port() != 0 {
        config.listen.control_listen =
            std::net::SocketAddr::new(control.ip(), port(control.port(), 1, n));
    }
    config.cluster.peers = if count > 1 {
        (1..=count)
            .filter(|k| *k != n)
            .map(|k| {
                format!(
                    "node-{k}={}",
                    std::net::SocketAddr::new(ip, port(base.cluster.listen.port(), 10, k))
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    config
}

/// The p99 target every capacity step is held to (docs/design.md,
/// performance targets: p99 under 5 ms).
pub const P99_TARGET_MS: f64 = 5.0;

/// Length of each capacity step: long enough for a p99 of thousands of
/// requests, short enough that the demo stays within about 2.5 minutes.
pub const CAPACITY_STEP: &str = "3s";

/// The algorithms of the capacity phase, with the demo app signing with
/// each.
pub const CAPACITY_APPS: [(&str, &str); 2] = [("EdDSA", "app-eddsa"), ("ES256", "app-es256")];

/// Runs the demo.
///
/// # Errors
/// When the node cannot start or `sigil-perf` is missing.
pub fn run(config: &Config, load: DemoLoad) -> anyhow::Result<bool> {
    let perf = std::env::current_exe()?.with_file_name("sigil-perf");
    anyhow::ensure!(
        perf.exists(),
        "{} not found: build it with `cargo build --release -p perf`",
        perf.display()
    );
    let count = load.nodes.max(1);
    eprintln!(
        "sigil demo: starting {count} node(s) on loopback, state in {}",
        config.data_dir.display()
    );
    let mut nodes = Vec::new();
    for n in 1..=count {
        let node = serve::start(&node_config(config, n, count))?;
        let e = node.endpoints();
        eprintln!("  node-{n}: QUIC {}   HTTP http://{}", e.quic, e.http);
        nodes.push(node);
    }
    let started = std::time::Instant::now();
    while !nodes.iter().all(|n| n.appliance.replica().can_serve()) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the cluster did not form (leases from a majority)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    if count > 1 {
        eprintln!("sigil demo: cluster formed: every node holds leases from a majority");
    }
    let endpoints = nodes[0].endpoints();
    // The load is spread over every node (the nodes run in this process:
    // node-1's /metrics counts the CPU of all of them).
    let targets: Vec<String> = nodes
        .iter()
        .map(|n| n.endpoints().quic.to_string())
        .collect();
    // Monday morning, compressed: a sixth at base, a sixth ramping up, a
    // third at the peak, a sixth ramping down, a sixth at base.
    let sixth = load.duration / 6;
    let report = config.data_dir.join("demo-report.json");
    let charts = config.data_dir.join("charts");
    eprintln!(
        "sigil demo: Monday morning: {:.0}/s, rising to {:.0}/s, for {:?}",
        load.base, load.peak, load.duration
    );
    let status = Command::new(&perf)
        .arg("monday")
        .args([
            "--target",
            &targets.join(","),
            "--server-name",
            &endpoints.server_name,
        ])
        .args(["--metrics", &endpoints.http.to_string()])
        .arg("--cert-dir")
        .arg(credentials_dir(&config.data_dir, "frontend"))
        .args([
            "--tenant",
            "acme",
            "--app",
            "app-eddsa",
            "--mix",
            "id-token=80,access-token=10,saml=5,session-validate=5",
        ])
        .args([
            "--base",
            &load.base.to_string(),
            "--peak",
            &load.peak.to_string(),
        ])
        .args([
            "--before",
            &format!("{}ms", sixth.as_millis()),
            "--ramp",
            &format!("{}ms", sixth.as_millis()),
        ])
        .args([
            "--hold",
            &format!("{}ms", (sixth * 2).as_millis()),
            "--after",
            &format!("{}ms", sixth.as_millis()),
        ])
        .arg("--json")
        .arg(&report)
        .arg("--charts")
        .arg(&charts)
        .status()
        .with_context(|| format!("running {}", perf.display()))?;
    // The capacity phase: the highest rate each algorithm sustains with
    // p99 within the target, on the same nodes.
    // The first search measures the latency floor and may raise the
    // target above it; the second is held to the same target, so the two
    // figures compare.
    let mut capacities: Vec<(&str, Option<serde_json::Value>)> = Vec::new();
    let mut all_ok = status.success();
    let mut held_to: Option<f64> = None;
    for (algorithm, app) in CAPACITY_APPS {
        let json = config
            .data_dir
            .join(format!("capacity-{}.json", algorithm.to_ascii_lowercase()));
        let _ = std::fs::remove_file(&json);
        let p99_ms = held_to.unwrap_or(P99_TARGET_MS);
        eprintln!(
            "sigil demo: capacity, {algorithm} ID tokens: {}steps of {CAPACITY_STEP} at rising rates until p99 > {p99_ms} ms",
            if held_to.is_none() { "a floor step at 200/s, then " } else { "" }
        );
        let ran = Command::new(&perf)
            .arg("capacity")
            .args([
                "--target",
                &targets.join(","),
                "--server-name",
                &endpoints.server_name,
            ])
            .args(["--metrics", &endpoints.http.to_string()])
            .arg("--cert-dir")
            .arg(credentials_dir(&config.data_dir, "frontend"))
            .args(["--tenant", "acme", "--app", app, "--mix", "id-token"])
            .args(["--step", CAPACITY_STEP, "--p99-ms", &p99_ms.to_string()])
            .args(held_to.map(|_| ["--floor-rate", "0"]).into_iter().flatten())
            .arg("--json")
            .arg(&json)
            .status()
            .with_context(|| format!("running {}", perf.display()))?;
        all_ok &= ran.success();
        let report = std::fs::read(&json)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        held_to = held_to.or_else(|| report.as_ref()?["effective_p99_target_ms"].as_f64());
        capacities.push((algorithm, report));
    }
    eprintln!("sigil demo: stopping the appliance");
    // The first node started the private Postgres: stop it last.
    for node in nodes.into_iter().rev() {
        node.shutdown();
    }
    eprintln!(
        "sigil demo: report {}  charts {}  capacity {}",
        report.display(),
        charts.display(),
        config.data_dir.join("capacity-*.json").display()
    );
    // The summary is the demo's one piece of stdout, and its last words.
    #[allow(clippy::print_stdout)]
    match measured(&capacities) {
        Some(measured) => println!("\n{}", super::demo_summary::summary(&measured)),
        None => eprintln!("sigil demo: no summary: the capacity phase wrote no report"),
    }
    Ok(all_ok)
}

/// The summary's figures from the capacity reports of this run (EdDSA
/// first, then ES256); `None` when either is missing.
fn measured(
    reports: &[(&str, Option<serde_json::Value>)],
) -> Option<super::demo_summary::Measured> {
    use super::demo_summary::{Capacity, Floor, Measured};
    let [(eddsa_name, Some(eddsa)), (es256_name, Some(es256))] = reports else {
        return None;
    };
    Some(Measured {
        cores: eddsa["cores"]
            .as_u64()
            .and_then(|c| usize::try_from(c).ok())
            .unwrap_or(1),
        cpu_model: eddsa["cpu_model"].as_str().unwrap_or("").to_owned(),
        p99_target_ms: eddsa["p99_target_ms"].as_f64().unwrap_or(P99_TARGET_MS),
        floor: Floor::from_report(eddsa),
        eddsa: Capacity::from_report(eddsa_name, eddsa),
        es256: Capacity::from_report(es256_name, es256),
    })
}
