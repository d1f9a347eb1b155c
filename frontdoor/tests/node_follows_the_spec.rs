//! The QUIC listener does what docs/protocol.md says, over real QUIC
//! connections with raw frames: which requests close a stream and how
//! (id 0, STOP_SENDING codes, answers in flight first, nothing after),
//! which are answered by id, duplicate ids, the in-flight limit, and the
//! TLS alerts for certificates the node cannot verify; and the numbers the
//! spec gives are the code's.
//!
//! The listener runs with the node's TLS configuration and a stand-in
//! handler whose requests can be held in flight, so the tests need no
//! Postgres and depend on no timing: what operations answer is tested on
//! the real appliance in appliance_end_to_end.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use ciborium::Value;
use frontdoor::pki::DeploymentCa;
use frontdoor::quic::server::{close_code, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_QUEUED};
use frontdoor::quic::{tls, Handler, QuicConfig, QuicLimits, QuicServer};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sigil_proto::results::Health;
use sigil_proto::{
    from_cbor, to_cbor, ErrorCode, FrameDecoder, Operation, Reply, WireError, WireResponse,
    MAX_FRAME,
};
use tokio::sync::Semaphore;

const SPEC: &str = include_str!("../../docs/protocol.md");

/// The spec with every run of white space made one space.
fn spec() -> String {
    SPEC.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Answers `health` at once and holds `session_validate` of session
/// `hold` until [`Stand::release`]; session `block` blocks the worker's
/// thread itself until the test too waits at [`Stand::gate`].
struct Stand {
    held: Semaphore,
    gate: Barrier,
    blocked: AtomicUsize,
    entered: AtomicUsize,
    overloaded: AtomicUsize,
    /// The threads held requests ran on.
    threads: Mutex<HashSet<String>>,
}

impl Stand {
    fn new() -> Stand {
        Stand {
            held: Semaphore::new(0),
            gate: Barrier::new(2),
            blocked: AtomicUsize::new(0),
            entered: AtomicUsize::new(0),
            overloaded: AtomicUsize::new(0),
            threads: Mutex::default(),
        }
    }

    fn release(&self) {
        self.held.close();
    }

    /// Held requests that started, and requests refused `overloaded`.
    fn counts(&self) -> (usize, usize) {
        let load = |n: &AtomicUsize| n.load(Ordering::SeqCst);
        (load(&self.entered), load(&self.overloaded))
    }

    /// Requests that started or were refused.
    fn settled(&self) -> usize {
        self.counts().0 + self.counts().1
    }
}

impl Handler for Stand {
    type Caller = ();

    async fn caller(&self, _: Option<CertificateDer<'static>>) {}

    async fn handle(&self, _: &(), operation: Operation) -> Result<Reply, WireError> {
        if matches!(&operation, Operation::SessionValidate { session, .. } if session == "panic") {
            panic!("the stand's handler fails");
        }
        if matches!(&operation, Operation::SessionValidate { session, .. } if session == "block") {
            self.blocked.fetch_add(1, Ordering::SeqCst);
            self.gate.wait();
        }
        if matches!(&operation, Operation::SessionValidate { session, .. } if session == "hold") {
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            self.threads.lock().unwrap().insert(thread);
            self.entered.fetch_add(1, Ordering::SeqCst);
            let _ = self.held.acquire().await;
        }
        // Any typed result will do; the node's name says which operation ran.
        Ok(Reply::Health(Health {
            status: "ok".into(),
            node: operation.name().into(),
            ready: true,
        }))
    }

    fn refused(&self, _: &(), code: ErrorCode, _: &str) {
        if code == ErrorCode::Overloaded {
            self.overloaded.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct Node {
    server: Option<QuicServer>,
    stand: Arc<Stand>,
    ca: DeploymentCa,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(workers: usize, limits: QuicLimits) -> Node {
        Node::start_sharing(workers, limits, true)
    }

    fn start_sharing(workers: usize, limits: QuicLimits, share_work: bool) -> Node {
        Node::start_asking(workers, limits, share_work, sigil_proto::tls::ACK_THRESHOLD)
    }

    /// A node asking its callers for `ack_threshold` (QUIC ACK frequency).
    fn start_asking(
        workers: usize,
        limits: QuicLimits,
        share_work: bool,
        ack_threshold: u32,
    ) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeploymentCa::create_or_load(&dir.path().join("ca")).unwrap();
        let node = ca.issue_node("test", &["localhost".into()]).unwrap();
        let server_config = tls::server_config(
            vec![node.certificate_der()],
            node.key_der().unwrap(),
            &ca.certificate_der(),
            ack_threshold,
        )
        .unwrap();
        let mut config = QuicConfig::new("127.0.0.1:0".parse().unwrap());
        (config.workers, config.pin_to_cores, config.limits) = (workers, false, limits);
        config.share_work = share_work;
        let stand = Arc::new(Stand::new());
        let server = QuicServer::start(config, server_config, Arc::clone(&stand)).unwrap();
        Node {
            server: Some(server),
            stand,
            ca,
            _dir: dir,
        }
    }

    fn default_limits() -> Node {
        Node::start(2, QuicLimits::default())
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    async fn connect(&self) -> quinn::Connection {
        let identity = self.ca.issue_client("web").unwrap();
        connect(
            self.addr(),
            &self.ca,
            Some((
                vec![identity.certificate_der()],
                identity.key_der().unwrap(),
            )),
        )
        .await
        .unwrap()
    }

    async fn stop(mut self) {
        self.stand.release();
        let server = self.server.take().unwrap();
        tokio::task::spawn_blocking(move || server.shutdown())
            .await
            .unwrap();
    }
}

async fn connect(
    addr: SocketAddr,
    ca: &DeploymentCa,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let config = sigil_proto::tls::client_config(&ca.certificate_der(), identity, 0).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint.connect(addr, "localhost").unwrap().await
}

/// Guards against a hang; no test asserts on how long anything takes.
async fn surely<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing after 30 s"))
}

/// Waits (at most 30 s) until `condition` holds.
async fn until(what: &str, condition: impl Fn() -> bool) {
    surely(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

fn frame(message: &Value) -> Vec<u8> {
    let body = to_cbor(message).unwrap();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn request(id: u64, op: &str) -> Value {
    Value::Map(vec![("id".into(), id.into()), ("op".into(), op.into())])
}

fn health(id: u64) -> Vec<u8> {
    frame(&request(id, "health"))
}

/// A request the stand holds in flight until released.
fn held(id: u64) -> Vec<u8> {
    validate(id, "hold")
}

/// Opens a stream, sends requests 1..=n for `session` on it and finishes it.
async fn send(connection: &quinn::Connection, session: &str, n: u64) -> quinn::RecvStream {
    let (mut send, recv) = connection.open_bi().await.unwrap();
    let wire: Vec<u8> = (1..=n).flat_map(|id| validate(id, session)).collect();
    send.write_all(&wire).await.unwrap();
    send.finish().unwrap();
    recv
}

fn validate(id: u64, session: &str) -> Vec<u8> {
    frame(&Value::Map(vec![
        ("id".into(), id.into()),
        ("op".into(), "session_validate".into()),
        ("tenant".into(), "acme".into()),
        ("session".into(), session.into()),
    ]))
}

/// Every answer until the node finishes its side.
async fn read_to_end(recv: &mut quinn::RecvStream) -> Vec<WireResponse> {
    let mut decoder = FrameDecoder::new();
    let mut answers = Vec::new();
    surely("answers until the node finishes", async {
        while let Some(chunk) = recv.read_chunk(64 * 1024, true).await.unwrap() {
            decoder.extend(&chunk.bytes);
            while let Some(frame) = decoder.next_frame().unwrap() {
                answers.push(from_cbor(&frame).unwrap());
            }
        }
    })
    .await;
    assert_eq!(
        decoder.pending(),
        0,
        "the node ended its side inside a frame"
    );
    answers
}

/// The next answer on a stream.
async fn answer(recv: &mut quinn::RecvStream, decoder: &mut FrameDecoder) -> WireResponse {
    surely("an answer", async {
        loop {
            if let Some(frame) = decoder.next_frame().unwrap() {
                return from_cbor(&frame).unwrap();
            }
            let chunk = recv.read_chunk(64 * 1024, true).await.unwrap();
            decoder.extend(&chunk.expect("an answer before the end").bytes);
        }
    })
    .await
}

fn ids(answers: &[WireResponse]) -> Vec<u64> {
    answers.iter().map(|a| a.id).collect()
}

fn code(answer: &WireResponse) -> Option<ErrorCode> {
    answer.error.as_ref().map(|e| e.code)
}

fn overloaded(answers: &[WireResponse]) -> usize {
    let refused = |a: &&WireResponse| code(a) == Some(ErrorCode::Overloaded);
    answers.iter().filter(refused).count()
}

/// The answers of a stream the node closed: the id-0 answer is last.
fn assert_closed(answers: &[WireResponse]) {
    let last = answers.last().expect("the id-0 answer");
    assert_eq!(
        (last.id, code(last)),
        (0, Some(ErrorCode::BadRequest)),
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|a| a.id == 0).count(),
        1,
        "{answers:?}"
    );
}

/// The STOP_SENDING code the node sent, or `None` when it read the stream
/// to its end.
async fn stop_sending(send: &quinn::SendStream) -> Option<u32> {
    surely("STOP_SENDING or the end read", send.stopped())
        .await
        .unwrap()
        .map(|code| u32::try_from(code.into_inner()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_zero_closes_the_stream_after_the_answers_in_flight() {
    let node = Node::default_limits();
    let connection = node.connect().await;
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut wire = held(1);
    wire.extend(health(2));
    wire.extend(frame(&request(0, "health")));
    wire.extend(health(3));
    send.write_all(&wire).await.unwrap();
    // The node stops reading at once, while request 1 is still held...
    assert_eq!(stop_sending(&send).await, Some(close_code::BAD_FRAME));
    node.stand.release();
    // ...answers what it admitted, then id 0, and nothing after it:
    // request 3 was never read.
    // (1 and 2 in the order they completed: 2 may have run on the other
    // worker and come back after 1 was released.)
    let answers = read_to_end(&mut recv).await;
    let mut admitted = ids(&answers);
    let last = admitted.pop();
    admitted.sort_unstable();
    assert_eq!((admitted, last), (vec![1, 2], Some(0)), "{answers:?}");
    assert_closed(&answers);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bodies_are_answered_by_id_or_close_the_stream() {
    let node = Node::default_limits();
    let connection = node.connect().await;

    // The id can be read: answered by id, and the stream goes on.
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut wire = frame(&Value::Map(vec![
        ("id".into(), 9.into()),
        ("op".into(), 5.into()),
    ]));
    wire.extend(frame(&request(10, "mint_money")));
    wire.extend(health(11));
    send.write_all(&wire).await.unwrap();
    send.finish().unwrap();
    let answers = read_to_end(&mut recv).await;
    assert_eq!(ids(&answers), [9, 10, 11], "{answers:?}");
    assert_eq!(code(&answers[0]), Some(ErrorCode::BadRequest));
    assert_eq!(code(&answers[1]), Some(ErrorCode::BadRequest));
    assert!(answers[2].result.is_some());
    assert_eq!(stop_sending(&send).await, None, "read to the end");

    // No id to answer: the stream closes.
    for body in [
        to_cbor(&Value::Map(vec![("op".into(), "health".into())])).unwrap(),
        to_cbor(&Value::Array(vec![9.into(), "health".into()])).unwrap(),
        vec![0xff, 0xff, 0xff],
    ] {
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        let mut wire = (body.len() as u32).to_be_bytes().to_vec();
        wire.extend(&body);
        wire.extend(health(12));
        send.write_all(&wire).await.unwrap();
        assert_eq!(stop_sending(&send).await, Some(close_code::BAD_FRAME));
        let answers = read_to_end(&mut recv).await;
        assert_eq!(ids(&answers), [0], "{body:02x?}: {answers:?}");
        assert_closed(&answers);
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_id_in_flight_closes_the_stream() {
    let node = Node::default_limits();
    let connection = node.connect().await;
    // Whatever the second request with id 5 holds, even a bad body.
    let duplicates = [
        health(5),
        frame(&Value::Map(vec![
            ("id".into(), 5.into()),
            ("op".into(), 7.into()),
        ])),
    ];
    let mut streams = Vec::new();
    for duplicate in &duplicates {
        let (mut send, recv) = connection.open_bi().await.unwrap();
        let mut wire = held(5);
        wire.extend(health(6));
        wire.extend(duplicate);
        send.write_all(&wire).await.unwrap();
        assert_eq!(stop_sending(&send).await, Some(close_code::BAD_FRAME));
        streams.push(recv);
    }
    node.stand.release();
    for mut recv in streams {
        // 5 and 6 in the order they completed (6 may have run on the
        // other worker), then 0.
        let answers = read_to_end(&mut recv).await;
        let mut admitted = ids(&answers);
        let last = admitted.pop();
        admitted.sort_unstable();
        assert_eq!((admitted, last), (vec![5, 6], Some(0)), "{answers:?}");
        let held = answers.iter().find(|a| a.id == 5).unwrap();
        let result = held.result.clone().unwrap();
        let ran: Health = result.deserialized().unwrap();
        assert_eq!(ran.node, "session_validate", "the held one's");
        assert_closed(&answers);
    }

    // An id may be used again once its answer has arrived.
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut decoder = FrameDecoder::new();
    send.write_all(&health(5)).await.unwrap();
    assert_eq!(answer(&mut recv, &mut decoder).await.id, 5);
    send.write_all(&health(5)).await.unwrap();
    assert_eq!(answer(&mut recv, &mut decoder).await.id, 5);
    send.finish().unwrap();
    assert!(read_to_end(&mut recv).await.is_empty());
    node.stop().await;
}

/// The held requests of one connection, sent on one stream, all running:
/// the names of the worker threads they run on. A worker hands requests
/// over once it has 8 more running than another (`MARGIN` in
/// frontdoor/src/quic/share.rs): 24 make sure it does.
async fn threads_of_one_connection(share_work: bool) -> HashSet<String> {
    let node = Node::start_sharing(2, QuicLimits::default(), share_work);
    let connection = node.connect().await;
    let mut recv = send(&connection, "hold", 24).await;
    until("24 held requests running", || node.stand.counts().0 >= 24).await;
    let threads = node.stand.threads.lock().unwrap().clone();
    node.stand.release();
    let mut answers = read_to_end(&mut recv).await;
    answers.sort_by_key(|a| a.id);
    assert_eq!(ids(&answers), (1..=24).collect::<Vec<u64>>(), "{answers:?}");
    node.stop().await;
    threads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_keeps_every_worker_busy() {
    // A connection lives on one worker; its requests run on both.
    let shared = threads_of_one_connection(true).await;
    assert_eq!(shared.len(), 2, "{shared:?}");
    assert!(shared.iter().all(|t| t.starts_with("sigil-quic-")));
    // Without sharing they stay on the worker that owns the connection.
    let alone = threads_of_one_connection(false).await;
    assert_eq!(alone.len(), 1, "{alone:?}");
}

/// `[limits] quic_ack_threshold` reaches the wire: a node asking for 16
/// sends its caller an ACK_FREQUENCY frame (the caller's next requests
/// then carry its ACKs); one set to 0 leaves QUIC's default and sends none.
#[tokio::test]
async fn the_node_asks_callers_for_fewer_acks_as_configured() {
    for (threshold, asks) in [(16, true), (0, false)] {
        let node = Node::start_asking(1, QuicLimits::default(), true, threshold);
        let connection = node.connect().await;
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        let mut decoder = FrameDecoder::new();
        // The frame goes out once the handshake is confirmed; a few
        // request-answer rounds give it the packets to ride in.
        for id in 1..=20 {
            send.write_all(&health(id)).await.unwrap();
            assert_eq!(answer(&mut recv, &mut decoder).await.id, id);
            if connection.stats().frame_rx.ack_frequency > 0 {
                break;
            }
        }
        let received = connection.stats().frame_rx.ack_frequency;
        assert_eq!(
            received > 0,
            asks,
            "threshold {threshold}: {received} ACK_FREQUENCY frames"
        );
        connection.close(0u32.into(), b"done");
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_fails_on_another_worker_is_still_answered() {
    // 1-8 are held on the connection's worker, so 9 goes to the other
    // one, whose handler panics: 9 is answered `internal`, and the stream
    // ends once 1-8 are released (nothing left waiting for an answer).
    let node = Node::default_limits();
    let connection = node.connect().await;
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut wire = Vec::new();
    for id in 1..=8 {
        wire.extend(held(id));
    }
    wire.extend(validate(9, "panic"));
    send.write_all(&wire).await.unwrap();
    send.finish().unwrap();
    let mut decoder = FrameDecoder::new();
    let failed = answer(&mut recv, &mut decoder).await;
    assert_eq!(failed.id, 9);
    assert_eq!(failed.error.map(|e| e.code), Some(ErrorCode::Internal));
    node.stand.release();
    let mut rest = ids(&read_to_end(&mut recv).await);
    rest.sort_unstable();
    assert_eq!(rest, (1..=8).collect::<Vec<u64>>());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_limit_is_the_nodes_split_over_its_workers() {
    // 8 for the node, 2 workers: 4 for the worker serving a connection,
    // whatever its streams.
    let mut limits = QuicLimits::default();
    limits.max_in_flight = 8;
    let node = Node::start(2, limits);
    let connection = node.connect().await;
    let streams = [
        send(&connection, "hold", 3).await,
        send(&connection, "hold", 3).await,
    ];
    let stand = &node.stand;
    until("every request admitted or refused", || stand.settled() >= 6).await;
    assert_eq!(stand.counts(), (4, 2));
    stand.release();
    let mut all = Vec::new();
    for mut recv in streams {
        let answers = read_to_end(&mut recv).await;
        let mut seen = ids(&answers);
        seen.sort_unstable();
        assert_eq!(seen, [1, 2, 3], "each request answered once");
        all.extend(answers);
    }
    assert_eq!(overloaded(&all), 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_a_worker_already_behind_is_refused_at_once() {
    // 8 queued for the node, 2 workers, no sharing: 4 for the connection's
    // worker. Blocked while two streams send 5 requests each, it then reads
    // both before any of their tasks starts: the first read admits its 5
    // (a read does not count against itself), the second begins with 5
    // waiting and is refused at once, though the in-flight limit is far.
    let mut limits = QuicLimits::default();
    limits.max_queued = 8;
    let node = Node::start_sharing(2, limits, false);
    let connection = node.connect().await;
    let stand = &node.stand;
    let mut blocker = send(&connection, "block", 1).await;
    let blocked = || stand.blocked.load(Ordering::SeqCst) > 0;
    until("the worker blocked", blocked).await;
    let streams = [
        send(&connection, "hold", 5).await,
        send(&connection, "hold", 5).await,
    ];
    tokio::time::sleep(Duration::from_millis(300)).await; // to the blocked worker's socket
    stand.gate.wait();
    until("all settled", || stand.settled() >= 10).await;
    assert_eq!(stand.counts(), (5, 5));
    assert_eq!(ids(&read_to_end(&mut blocker).await), [1]);
    // Started, the 5 left the queue though still in flight: more are admitted.
    let mut again = send(&connection, "hold", 3).await;
    until("three more admitted", || stand.counts().0 >= 8).await;
    stand.release();
    let mut refused_streams = 0;
    for mut recv in streams {
        let answers = read_to_end(&mut recv).await;
        let mut seen = ids(&answers);
        seen.sort_unstable();
        assert_eq!(seen, [1, 2, 3, 4, 5], "each request answered once");
        let refused = overloaded(&answers);
        assert!(
            matches!(refused, 0 | 5),
            "a read is admitted or refused whole"
        );
        refused_streams += usize::from(refused == 5);
    }
    assert_eq!(refused_streams, 1);
    let again_answers = read_to_end(&mut again).await;
    assert_eq!(again_answers.len(), 3);
    assert!(again_answers.iter().all(|a| code(a).is_none()));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_errors_close_the_stream_as_documented() {
    let mut limits = QuicLimits::default();
    limits.frame_timeout = Duration::from_millis(200);
    let node = Node::start(2, limits);
    let connection = node.connect().await;

    // A frame of exactly the maximum size is served.
    let mut padded = Value::Map(vec![
        ("id".into(), 1.into()),
        ("op".into(), "health".into()),
        ("pad".into(), "x".repeat(MAX_FRAME - 30).into()),
    ]);
    let overhead = to_cbor(&padded).unwrap().len() - (MAX_FRAME - 30);
    padded.as_map_mut().unwrap()[2].1 = "x".repeat(MAX_FRAME - overhead).into();
    let largest = frame(&padded);
    assert_eq!(largest.len(), 4 + MAX_FRAME);
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&largest).await.unwrap();
    send.finish().unwrap();
    assert_eq!(ids(&read_to_end(&mut recv).await), [1]);

    let oversized = {
        let mut wire = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        wire.extend(b"xx");
        wire
    };
    let cases: [(&str, Vec<u8>, Option<u32>); 3] = [
        ("oversized", oversized, Some(close_code::BAD_FRAME)),
        ("empty", vec![0, 0, 0, 0], Some(close_code::BAD_FRAME)),
        ("stalled", vec![0, 0], Some(close_code::FRAME_TIMEOUT)),
    ];
    for (case, bytes, stop) in cases {
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        let mut wire = health(1);
        wire.extend(bytes);
        send.write_all(&wire).await.unwrap();
        assert_eq!(stop_sending(&send).await, stop, "{case}");
        let answers = read_to_end(&mut recv).await;
        assert_eq!(ids(&answers), [1, 0], "{case}: {answers:?}");
        assert_closed(&answers);
    }

    // Finished inside a frame: the id-0 answer, and no STOP_SENDING (every
    // byte had arrived; there was nothing to stop).
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut wire = health(1);
    wire.extend([0, 0, 0, 9, 1, 2]);
    send.write_all(&wire).await.unwrap();
    send.finish().unwrap();
    let answers = read_to_end(&mut recv).await;
    assert_eq!(ids(&answers), [1, 0], "{answers:?}");
    assert_closed(&answers);
    assert_eq!(stop_sending(&send).await, None);
    node.stop().await;
}

/// The TLS alert that closed a connection offering `identity`.
async fn alert_for(
    node: &Node,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> u8 {
    let error = match connect(node.addr(), &node.ca, Some((vec![certificate], key))).await {
        Err(error) => error,
        // TLS 1.3: the client may finish before the node checks its
        // certificate; then the node closes the connection at once.
        Ok(connection) => {
            if let Ok((mut send, mut recv)) = connection.open_bi().await {
                let _ = send.write_all(&health(1)).await;
                let _ = send.finish();
                let mut decoder = FrameDecoder::new();
                let read = surely("the close", recv.read_chunk(4096, true)).await;
                if let Ok(Some(chunk)) = read {
                    decoder.extend(&chunk.bytes);
                    panic!("the node answered: {:?}", decoder.next_frame());
                }
            }
            connection.close_reason().expect("closed by the node")
        }
    };
    match error {
        quinn::ConnectionError::ConnectionClosed(close) => {
            let code = u64::from(close.error_code);
            assert!((0x100..0x200).contains(&code), "not a TLS alert: {close}");
            u8::try_from(code - 0x100).unwrap()
        }
        other => panic!("not closed by a TLS alert: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_refused_with_the_documented_alerts() {
    let node = Node::default_limits();
    let documented = |alert: &str, code: u8| {
        let row = format!("| `{alert}` ({code}) |");
        assert!(spec().contains(&row), "spec lacks {row:?}");
        code
    };
    // An impostor CA with the deployment CA's exact name: the issuer is
    // found by name, its signature does not verify.
    let dir = tempfile::tempdir().unwrap();
    let impostor = DeploymentCa::create_or_load(dir.path()).unwrap();
    let forged = impostor.issue_client("web").unwrap();
    assert_eq!(
        alert_for(&node, forged.certificate_der(), forged.key_der().unwrap()).await,
        documented("decrypt_error", 51)
    );
    // A CA of another name: the issuer is unknown.
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Another CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::new(params, &other_key);
    let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = rcgen::KeyPair::generate().unwrap();
    let certificate = client.signed_by(&client_key, &issuer).unwrap();
    assert_eq!(
        alert_for(
            &node,
            certificate.der().clone(),
            PrivatePkcs8KeyDer::from(client_key.serialize_der()).into()
        )
        .await,
        documented("unknown_ca", 48)
    );
    // The deployment CA's own client certificate, and none at all, get in.
    for connection in [
        node.connect().await,
        connect(node.addr(), &node.ca, None).await.unwrap(),
    ] {
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&health(1)).await.unwrap();
        send.finish().unwrap();
        assert_eq!(ids(&read_to_end(&mut recv).await), [1]);
    }
    node.stop().await;
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[test]
fn the_spec_gives_the_numbers_of_the_code() {
    let spec = spec();
    let limits = QuicLimits::default();
    let idle = tls::IDLE_TIMEOUT.as_secs();
    for sentence in [
        format!(
            "a node holds at most {} requests in flight, all callers, connections and streams together",
            thousands(DEFAULT_MAX_IN_FLIGHT as u64)
        ),
        format!(
            "one connection has at most {} ÷ cores requests in flight ({} on a 2-core node)",
            thousands(DEFAULT_MAX_IN_FLIGHT as u64),
            DEFAULT_MAX_IN_FLIGHT / 2
        ),
        "There is no separate limit per stream or per connection.".into(),
        format!(
            "By default it is {}, as large as the in-flight limit, so it refuses nothing on its own.",
            thousands(DEFAULT_MAX_QUEUED as u64)
        ),
        format!("`1 ≤ length ≤ {MAX_FRAME}`"),
        format!("| a frame longer than {} bytes, or of length 0 | {} |", thousands(MAX_FRAME as u64), close_code::BAD_FRAME),
        format!("| a frame body whose `id` cannot be read (above), or is 0 | {} |", close_code::BAD_FRAME),
        format!(
            "| a frame left incomplete for {} s | {} |",
            limits.frame_timeout.as_secs(),
            close_code::FRAME_TIMEOUT
        ),
        format!("(at most {} at once per connection)", tls::MAX_STREAMS),
        format!("receive window of {} bytes", thousands(tls::STREAM_WINDOW.into())),
        format!("each connection {} bytes", thousands(tls::CONNECTION_WINDOW.into())),
        format!("The node closes a connection idle for {idle} s"),
        // Keep-alives: at least two chances before the idle timeout.
        format!("at least every {} s", idle / 3),
    ] {
        assert!(spec.contains(&sentence), "spec lacks {sentence:?}");
    }
}
