//! What `sigil` answers a newcomer who gets something wrong in the first
//! hour: each message names the cause and what to do, once, and the exit
//! code says it failed. Runs the built `sigil` binary; most of these tests
//! need no running node (the tenant-name matrix starts one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{free_port, sigil, sigil_output, Serve};
use sigil_proto::credentials::Credentials;
use sigil_proto::target::Endpoints;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A caller certificate and a CA in `dir`, as `sigil admin frontend add`
/// writes them, so that a client gets as far as connecting.
fn caller_credentials(dir: &Path) {
    let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
    let caller = rcgen::generate_simple_self_signed(vec!["caller".into()]).unwrap();
    Credentials {
        certificate_pem: caller.cert.pem(),
        key_pem: caller.signing_key.serialize_pem(),
    }
    .write(dir, Some(&ca.cert.pem()))
    .unwrap();
}

#[test]
fn a_missing_server_fails_soon_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = dir.path().join("caller");
    caller_credentials(&cert_dir);
    let target = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let output = sigil_output(
        dir.path(),
        &[
            "client",
            "--target",
            &target,
            "--cert-dir",
            cert_dir.to_str().unwrap(),
            "--timeout",
            "1",
            "health",
        ],
    );
    // Generous: the QUIC idle timeout it used to wait for is 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!output.status.success());
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "no answer from {target} within 1s: is `sigil serve` running?"
        )),
        "{text}"
    );
}

#[test]
fn a_missing_embedded_node_points_at_its_endpoints_file() {
    let dir = tempfile::tempdir().unwrap();
    let var = dir.path().join("var");
    caller_credentials(&var.join("credentials").join("frontend"));
    // Where an earlier `sigil serve` listened; nothing listens there now.
    let quic: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    Endpoints {
        quic,
        http: "127.0.0.1:8080".parse().unwrap(),
        server_name: "localhost".into(),
        control_url: None,
    }
    .store(&var)
    .unwrap();
    let started = Instant::now();
    let output = sigil_output(dir.path(), &["client", "health"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "no answer from {quic} within 3s: is `sigil serve` running? (see ./var/endpoints.json)"
        )),
        "{text}"
    );
}

#[test]
fn the_timeout_flag_must_be_positive_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let output = sigil_output(dir.path(), &["client", "--timeout", "0", "health"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--timeout"), "{}", stderr(&output));
}

#[test]
fn keys_and_cluster_help_name_the_admin_credentials_they_use() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["keys", "cluster"] {
        let output = sigil_output(dir.path(), &[command, "--help"]);
        assert!(output.status.success());
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains("default: DATA_DIR/credentials/admin"),
            "{help}"
        );
        assert!(!help.contains("credentials/frontend"), "{help}");
    }
    let output = sigil_output(dir.path(), &["client", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("default: DATA_DIR/credentials/frontend"),
        "{help}"
    );
}

#[test]
fn an_os_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let output = sigil_output(
        dir.path(),
        &[
            "client",
            "--target",
            "127.0.0.1:9",
            "--cert-dir",
            missing.to_str().unwrap(),
            "health",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!(
            "the deployment CA (ca.pem in --cert-dir): {}: ",
            missing.join("ca.pem").display()
        )),
        "{text}"
    );
    assert_eq!(text.matches("(os error 2)").count(), 1, "{text}");

    let config = dir.path().join("missing.toml");
    let output = sigil_output(dir.path(), &["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains(&format!("{}: ", config.display())), "{text}");
    assert_eq!(text.matches("(os error 2)").count(), 1, "{text}");
}

#[test]
fn commands_that_run_no_node_refuse_the_serve_flags() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 3] = [
        &["audit", "status"],
        &["directory", "seed"],
        &[
            "admin",
            "frontend",
            "add",
            "--name",
            "x",
            "--tenants",
            "*",
            "--out",
            "out",
        ],
    ];
    for command in commands {
        for flag in [
            &["--peers", "a=127.0.0.1:1"][..],
            &["--https"],
            &["--quic-listen", "127.0.0.1:1"],
        ] {
            let args: Vec<&str> = command.iter().chain(flag).copied().collect();
            let output = sigil_output(dir.path(), &args);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{args:?}: {}",
                stderr(&output)
            );
            let text = stderr(&output);
            assert!(
                text.contains(&format!("unexpected argument '{}'", flag[0])),
                "{args:?}: {text}"
            );
        }
    }
    let output = sigil_output(dir.path(), &["serve", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--peers",
        "--https",
        "--quic-listen",
        "--data-dir",
        "--node ",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}: {help}");
    }
}

#[test]
fn serve_on_a_taken_port_fails_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (quic, http) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let cases = [
        (
            format!("127.0.0.1:{}", free_port()),
            http.to_string(),
            format!(
                "HTTP (TCP) port {} on {http} cannot be bound: ",
                http.port()
            ),
            "--http-listen",
        ),
        (
            quic.to_string(),
            format!("127.0.0.1:{}", free_port()),
            format!(
                "QUIC (UDP) port {} on {quic} cannot be bound: ",
                quic.port()
            ),
            "--quic-listen",
        ),
    ];
    for (quic_listen, http_listen, message, flag) in cases {
        let output = sigil_output(
            dir.path(),
            &[
                "serve",
                "--quic-listen",
                &quic_listen,
                "--http-listen",
                &http_listen,
            ],
        );
        assert_eq!(output.status.code(), Some(1));
        let text = stderr(&output);
        assert!(text.contains(&message), "{text}");
        assert!(
            text.contains(&format!("choose another address with {flag}")),
            "{text}"
        );
        assert!(!text.contains("WARN"), "{text}");
        // Refused before the data directory (and Postgres in it) was made.
        assert!(!dir.path().join("var").exists());
    }
}

/// `sigil client session create` in `root` as the caller in `cert_dir`,
/// for `tenant`: the exit code and the answer's JSON.
fn session_as(root: &Path, cert_dir: &Path, tenant: &str) -> (Option<i32>, serde_json::Value) {
    let output = sigil_output(
        root,
        &[
            "client",
            "--cert-dir",
            cert_dir.to_str().unwrap(),
            "session",
            "create",
            "--tenant",
            tenant,
            "--user",
            "alice",
        ],
    );
    let answer = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "{tenant}: {}{}",
            stderr(&output),
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code(), answer)
}

/// A caller that could know whether a name exists (registered for `*`, or
/// an admin) is told `not_found` for one that does not; a caller limited
/// to other tenants is told `forbidden` in the same words for a name that
/// exists and one that does not, and is served for its own. A refusal
/// exits 3.
#[test]
fn unknown_tenants_are_not_found_only_for_callers_that_may_know() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    Serve::start(root, free_port(), free_port()).stop();
    let mint = |name: &str, tenants: &str, admin: bool| {
        let out = root.join(name);
        let mut args = vec![
            "admin",
            "frontend",
            "add",
            "--name",
            name,
            "--tenants",
            tenants,
            // Asked for sessions below: allowed session_create.
            "--trusted-assertions",
            "--out",
        ];
        let out_text = out.to_str().unwrap().to_owned();
        args.push(&out_text);
        if admin {
            args.push("--admin");
        }
        let (ok, minted) = sigil(root, &args);
        assert!(ok, "{minted}");
        out
    };
    let everyone = mint("all-tenants", "*", false);
    let acme_only = mint("acme-only", "acme", false);
    let acme_admin = mint("acme-admin", "acme", true);
    let serve = Serve::start(root, free_port(), free_port());
    let error = |answer: &serde_json::Value| {
        (
            answer["error"]["code"].as_str().unwrap_or("").to_owned(),
            answer["error"]["message"].as_str().unwrap_or("").to_owned(),
        )
    };

    // `*` caller, unknown tenant: not_found.
    let (code, answer) = session_as(root, &everyone, "nosuch");
    assert_eq!(code, Some(3), "{answer}");
    assert_eq!(
        error(&answer),
        ("not_found".into(), "no tenant nosuch".into())
    );
    // An admin limited to acme: not_found for a name that does not exist,
    // forbidden for one that does.
    let (code, answer) = session_as(root, &acme_admin, "nosuch");
    assert_eq!(code, Some(3), "{answer}");
    assert_eq!(
        error(&answer),
        ("not_found".into(), "no tenant nosuch".into())
    );
    let (code, answer) = session_as(root, &acme_admin, "globex");
    assert_eq!(code, Some(3), "{answer}");
    assert_eq!(error(&answer).0, "forbidden");

    // A caller limited to acme: the same refusal for a tenant that exists
    // (globex) and one that does not, its own list named, neither name
    // suggested to exist.
    let (code, unknown) = session_as(root, &acme_only, "nosuch");
    assert_eq!(code, Some(3), "{unknown}");
    assert_eq!(
        error(&unknown),
        (
            "forbidden".into(),
            "acme-only may act only for tenant acme: nosuch is not it".into()
        )
    );
    let (code, existing) = session_as(root, &acme_only, "globex");
    assert_eq!(code, Some(3), "{existing}");
    assert_eq!(
        error(&existing),
        (
            "forbidden".into(),
            "acme-only may act only for tenant acme: globex is not it".into()
        )
    );
    // The default demo front end (acme, globex) names both.
    let frontend = root.join("var/credentials/frontend");
    let (code, answer) = session_as(root, &frontend, "nosuch");
    assert_eq!(code, Some(3), "{answer}");
    assert_eq!(
        error(&answer),
        (
            "forbidden".into(),
            "demo-frontend may act only for tenants acme, globex: nosuch is not one of them".into()
        )
    );

    // Its own tenant works.
    let (code, answer) = session_as(root, &acme_only, "acme");
    assert_eq!(code, Some(0), "{answer}");
    assert!(answer["result"]["session"].is_string(), "{answer}");

    // A reader that stops early (`sigil client ... | head -1`) is no error:
    // no panic about a broken pipe, and the exit code of the call itself.
    let mut piped = std::process::Command::new(common::SIGIL)
        .current_dir(root)
        .args(["client", "health"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(piped.stdout.take());
    let output = piped.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    serve.stop();
}

/// The field names the report table of docs/perf.md lists (its first
/// column), but `soak` (soak runs only).
fn documented_report_fields() -> Vec<String> {
    let doc = include_str!("../../docs/perf.md");
    let table = doc
        .split("## Report (JSON)")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|f| f != "soak")
        .collect()
}

fn perf_output(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(common::cluster::Nodes::perf())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// Bad flags are refused with a message naming the flag, a non-zero exit
/// and no panic; none of these needs a node.
#[test]
fn sigil_perf_refuses_bad_flags_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["load", "--mix", "id-token=1,bogus=2"],
            "--mix: unknown operation \"bogus\"",
        ),
        (&["load", "--rate", "0"], "--rate must be positive"),
        (&["capacity", "--factor", "1"], "--factor must be above 1"),
        (
            &["load", "--rate", "10", "--duration", "1s"],
            "start the appliance with `sigil serve` first, or pass --target and --cert-dir",
        ),
        (&["load", "--duration", "0s"], "must be a positive duration"),
        (&["merge", "no-such.hlog"], "no-such.hlog: No such file"),
        (
            &["capacity", "--hdr-log", "x.hlog"],
            "--hdr-log is for load, monday and soak",
        ),
    ];
    for (args, message) in cases {
        let output = perf_output(dir.path(), args);
        let text = stderr(&output);
        assert!(!output.status.success(), "{args:?}: {text}");
        assert!(text.contains(message), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
}

/// A 2 s load against a real node: exits 0, its summary starts on a line
/// of its own, progress comes as plain lines on a piped stderr, and the
/// JSON report has every field docs/perf.md lists. A short capacity search
/// writes its report too.
#[test]
fn sigil_perf_runs_against_a_node_and_reports_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let serve = Serve::start(root, free_port(), free_port());
    let quic = serve.endpoints.quic.to_string();
    let http = serve.endpoints.http.to_string();
    let cert_dir = serve.var().join("credentials/frontend");
    let common_args = [
        "--target",
        &quic,
        "--server-name",
        "localhost",
        "--metrics",
        &http,
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--threads",
        "1",
        "--connections",
        "1",
        "--sessions-per-user",
        "2",
    ];
    let report = root.join("report.json");
    let charts = root.join("charts");
    let mut args = vec!["load"];
    args.extend(common_args);
    args.extend(["--rate", "200", "--duration", "2s", "--json"]);
    args.push(report.to_str().unwrap());
    args.push("--charts");
    args.push(charts.to_str().unwrap());
    let hdr_log = root.join("run.hlog");
    args.push("--hdr-log");
    args.push(hdr_log.to_str().unwrap());
    let output = perf_output(root, &args);
    let (out, err) = (String::from_utf8_lossy(&output.stdout), stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{out}{err}");
    assert!(out.starts_with("load against "), "{out}");
    assert!(!out.contains('\r') && !out.contains('\u{1b}'), "{out:?}");
    assert!(out.lines().any(|l| l.starts_with("  errors: ")), "{out}");
    // Piped stderr: plain lines, no bar.
    assert!(
        err.lines()
            .any(|l| l.starts_with('[') && l.contains("] sent ")),
        "{err}"
    );
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let fields = documented_report_fields();
    assert!(fields.len() > 15, "{fields:?}");
    for field in &fields {
        assert!(json.get(field).is_some(), "report lacks {field}: {json}");
    }
    assert_eq!(json["profile"], "load");
    assert!(json["ok"].as_u64().unwrap() > 0, "{json}");
    assert!(json["overhead_factor"].as_f64().is_some(), "{json}");
    assert!(
        json["generator_cpu_us_per_op"].as_f64().unwrap() > 0.0,
        "{json}"
    );

    // The interval log merges (here with itself, as if two generators had
    // run at once): twice the successes of its whole seconds.
    assert!(out.contains("  hdr log: "), "{out}");
    let merged = root.join("merged.json");
    let log = hdr_log.to_str().unwrap();
    let output = perf_output(
        root,
        &["merge", log, log, "--json", merged.to_str().unwrap()],
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(out.starts_with("merged 2 logs over the "), "{out}");
    let merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    let whole_ok: u64 = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["partial"] == false)
        .map(|p| p["ok"].as_u64().unwrap())
        .sum();
    assert_eq!(merged["count"].as_u64(), Some(2 * whole_ok), "{merged}");
    assert!(merged["rate_rps"].as_f64().unwrap() > 0.0, "{merged}");
    for field in ["files", "common_span_s", "latency_us"] {
        assert!(merged.get(field).is_some(), "merge report lacks {field}");
    }

    // A short capacity search: a floor step at 50/s, then 1 s steps from
    // 100/s up to `max` held to `p99_ms`; its stdout, stderr and report.
    let capacity = root.join("capacity.json");
    let search = |max: &str, p99_ms: &str| {
        let mut args = vec!["capacity"];
        args.extend(common_args.iter().copied());
        args.extend([
            "--start", "100", "--max", max, "--step", "1s", "--p99-ms", p99_ms,
        ]);
        args.extend(["--floor-rate", "50", "--json", capacity.to_str().unwrap()]);
        let output = perf_output(root, &args);
        let (out, err) = (String::from_utf8_lossy(&output.stdout), stderr(&output));
        assert_eq!(output.status.code(), Some(0), "{out}{err}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&capacity).unwrap()).unwrap();
        (out.into_owned(), err, json)
    };

    // Within a generous target (which the floor leaves as it is): the floor
    // step, then two steps up to --max.
    let (out, err, json) = search("200", "1000");
    assert!(out.starts_with("capacity against "), "{out}");
    assert!(!out.contains("raised"), "{out}");
    assert_eq!(err.matches("capacity floor ").count(), 1, "{err}");
    assert_eq!(err.matches("capacity step ").count(), 2, "{err}");
    assert_eq!(json["kind"], "capacity");
    assert_eq!(json["steps"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(json["steps"][0]["phase"], "floor", "{json}");
    assert_eq!(json["capacity_rps"], 200.0, "{json}");
    assert_eq!(json["capped"], true, "{json}");
    assert_eq!(json["floor_rps"], 50.0, "{json}");
    assert_eq!(json["target_raised"], false, "{json}");
    assert_eq!(json["effective_p99_target_ms"], 1000.0, "{json}");
    for field in [
        "cores",
        "cpu_model",
        "raw",
        "capacity_per_core",
        "overhead_factor",
        "p99_target_ms",
        "floor_p99_ms",
        "floor_audit_sync_p99_ms",
        "floor_explained_by_disk",
    ] {
        assert!(
            json.get(field).is_some(),
            "capacity report lacks {field}: {json}"
        );
    }
    // The node syncs an audit record per token: the floor step saw syncs.
    assert!(json["floor_audit_sync_p99_ms"].as_f64().is_some(), "{json}");

    // A target below the floor (1 µs): the steps are held to the floor,
    // up to a whole ms, plus the target, and the output says so.
    let (out, err, json) = search("100", "0.001");
    assert!(err.contains("this node's latency floor"), "{err}");
    assert!(out.contains("the target was raised from 0.001 ms"), "{out}");
    assert_eq!(json["target_raised"], true, "{json}");
    let floor_us = (json["floor_p99_ms"].as_f64().unwrap() * 1000.0).round() as u64;
    let held_us = (json["effective_p99_target_ms"].as_f64().unwrap() * 1000.0).round() as u64;
    assert_eq!(held_us, floor_us.div_ceil(1000) * 1000 + 1, "{json}");
    serve.stop();
}
