//! Misbehaving callers cost only themselves: a stream left inside a frame
//! is closed after the frame timeout with an error, while the connection's
//! other streams and other callers go on; a caller that vanishes with
//! requests in flight leaves the node serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{free_port, Serve};
use sigil_proto::credentials::{load_ca_certificate, Credentials};
use sigil_proto::{
    from_cbor, to_cbor, write_frame, ErrorCode, FrameDecoder, Operation, WireResponse,
};

fn free_port_tcp() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

async fn raw_connection(serve: &Serve) -> (quinn::Endpoint, quinn::Connection) {
    let credentials = Credentials::load(&serve.var().join("credentials/frontend")).unwrap();
    let ca = load_ca_certificate(&serve.var().join("ca/ca.pem")).unwrap();
    let config = sigil_proto::tls::client_config(
        &ca,
        Some((
            vec![credentials.certificate_der()],
            credentials.key_der().unwrap(),
        )),
        sigil_proto::tls::ACK_THRESHOLD,
    )
    .unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let connection = endpoint
        .connect(serve.endpoints.quic, "localhost")
        .unwrap()
        .await
        .unwrap();
    (endpoint, connection)
}

async fn read_answer(recv: &mut quinn::RecvStream) -> WireResponse {
    let mut decoder = FrameDecoder::new();
    loop {
        if let Some(frame) = decoder.next_frame().unwrap() {
            return from_cbor(&frame).unwrap();
        }
        let chunk = recv
            .read_chunk(4096, true)
            .await
            .unwrap()
            .expect("an answer before the stream ends");
        decoder.extend(&chunk.bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_vanishing_callers_hurt_only_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigil.toml");
    std::fs::write(&config, "[limits]\nframe_timeout_secs = 1\n").unwrap();
    let (quic, http) = (free_port(), free_port());
    let path = dir.path().to_owned();
    let serve = tokio::task::spawn_blocking(move || {
        Serve::start_with(&path, quic, http, &["--config", config.to_str().unwrap()])
    })
    .await
    .unwrap();
    let (_endpoint, connection) = raw_connection(&serve).await;

    // A second node on the same ports is refused (SO_REUSEPORT would
    // otherwise let it share them and split the callers between the two).
    let other_dir = tempfile::tempdir().unwrap();
    let second = std::process::Command::new(common::SIGIL)
        .current_dir(other_dir.path())
        .args([
            "serve",
            "--quic-listen",
            &serve.endpoints.quic.to_string(),
            "--http-listen",
            &free_port_tcp(),
        ])
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("is another node running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // A slow caller: half a frame header, then nothing.
    let (mut slow_send, mut slow_recv) = connection.open_bi().await.unwrap();
    slow_send.write_all(&[0, 0]).await.unwrap();
    // Meanwhile another stream of the same connection is served at once.
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut frame = BytesMut::new();
    write_frame(&to_cbor(&Operation::Health.to_wire(9)).unwrap(), &mut frame).unwrap();
    send.write_all(&frame).await.unwrap();
    let started = Instant::now();
    let answer = read_answer(&mut recv).await;
    assert_eq!(answer.id, 9);
    assert!(answer.result.is_some());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "not held up by the slow stream"
    );
    // The slow stream is closed with an error after the frame timeout.
    let closed = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut slow_recv))
        .await
        .expect("closed within the timeout");
    assert_eq!(closed.id, 0);
    assert_eq!(closed.error.unwrap().code, ErrorCode::BadRequest);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed by the timeout, not before"
    );

    // A caller that vanishes with requests in flight (no CLOSE sent).
    {
        let client = Arc::new(serve.client(None).await.unwrap());
        let created = common::session(&client, "acme", "alice").await;
        for _ in 0..200 {
            let (client, session) = (Arc::clone(&client), created.clone());
            tokio::spawn(async move {
                let _ = client
                    .call(&Operation::IdToken {
                        tenant: "acme".into(),
                        user: "alice".into(),
                        app: "app-es256".into(),
                        session,
                        nonce: None,
                        offline: false,
                    })
                    .await;
            });
        }
        // Dropped here without closing: the node sees silence.
    }
    let (_endpoint2, other) = raw_connection(&serve).await;
    let (mut send, mut recv) = other.open_bi().await.unwrap();
    send.write_all(&frame).await.unwrap();
    assert!(
        read_answer(&mut recv).await.result.is_some(),
        "the node serves others after a caller vanished"
    );
    let healthy = serve.client(None).await.unwrap();
    let session = common::session(&healthy, "acme", "alice").await;
    healthy
        .call(&Operation::IdToken {
            tenant: "acme".into(),
            user: "alice".into(),
            app: "app-es256".into(),
            session,
            nonce: None,
            offline: false,
        })
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}
