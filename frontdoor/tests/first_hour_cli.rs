//! What `sigil` answers a newcomer who gets something wrong in the first
//! hour: each message names the cause and what to do, once, and the exit
//! code says it failed. Runs the built `sigil` binary; none of these tests
//! needs a running node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{free_port, sigil_output};
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
