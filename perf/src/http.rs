//! Open-loop load on the HTTP introspection endpoint (issue 19), with its
//! same-run baseline: `GET /t/{tenant}/.well-known/jwks.json` at the same
//! rate on the same listener, then `POST /t/{tenant}/oauth2/introspect`,
//! each request with a fresh `private_key_jwt` assertion (Ed25519, signed
//! here) for an active access token. Arrivals come from the schedule
//! ([`crate::engine`]), latency from the intended send time (coordinated
//! omission corrected). HTTP/1.1 keep-alive connections, one per request
//! in flight, pooled per generator thread; answers parsed with httparse.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use signer::b64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::engine::{self, Call, Caller, LoadConfig, Mix, Progress, RequestKind};
use crate::record::Percentiles;
use crate::schedule::RateProfile;

/// Makes an Ed25519 client key: `(pkcs8, jwks JSON)` to register with
/// `sigil admin app set-jwks`.
///
/// # Errors
/// When the generator fails.
pub fn client_key() -> Result<(Vec<u8>, String), String> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
        .map_err(|_| "key generation failed".to_owned())?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())?;
    let jwks = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"sigil-perf","x":"{}"}}]}}"#,
        b64::encode(key.public_key().as_ref())
    );
    Ok((pkcs8.as_ref().to_vec(), jwks))
}

/// What an introspection run needs.
#[derive(Debug, Clone)]
pub struct IntrospectPlan {
    /// The HTTP listener.
    pub http: SocketAddr,
    /// The node's public URL (the assertions' `aud` prefix).
    pub public_url: String,
    /// Tenant slug.
    pub tenant: String,
    /// The calling app (its JWKS holds the key).
    pub app: String,
    /// Its Ed25519 key, PKCS#8.
    pub key: Vec<u8>,
    /// An active access token issued to `app`.
    pub token: String,
    /// Requests per second.
    pub rate: f64,
    /// Each phase's length.
    pub duration: Duration,
    /// Generator threads.
    pub threads: usize,
}

/// One phase's figures.
#[derive(Debug)]
pub struct Phase {
    /// `jwks` or `introspect`.
    pub name: &'static str,
    /// Latency from the intended send time, µs.
    pub latency: Percentiles,
    /// Requests sent.
    pub sent: u64,
    /// Good answers (200; for introspection, `active: true`).
    pub ok: u64,
    /// Errors by kind.
    pub errors: Vec<(String, u64)>,
    /// Wall time.
    pub elapsed: Duration,
}

struct HttpCaller {
    http: SocketAddr,
    pool: Rc<RefCell<Vec<TcpStream>>>,
    plan: Arc<IntrospectPlan>,
    key: Rc<Ed25519KeyPair>,
    thread: usize,
    next: Cell<u64>,
}

impl HttpCaller {
    fn introspect_request(&self) -> Vec<u8> {
        let p = &self.plan;
        let n = self.next.get();
        self.next.set(n + 1);
        let mut nonce = [0u8; 8];
        let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut nonce);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = format!(
            r#"{{"iss":"{app}","sub":"{app}","aud":"{url}/t/{tenant}/oauth2/introspect","exp":{exp},"iat":{now},"jti":"perf-{thread}-{n}-{nonce}"}}"#,
            app = p.app,
            url = p.public_url,
            tenant = p.tenant,
            exp = now + 120,
            thread = self.thread,
            nonce = b64::encode(nonce),
        );
        let input = format!(
            "{}.{}",
            b64::encode(r#"{"alg":"EdDSA","kid":"sigil-perf"}"#),
            b64::encode(claims)
        );
        let assertion = format!("{input}.{}", b64::encode(self.key.sign(input.as_bytes())));
        let body = format!(
            "token={}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}",
            p.token
        );
        format!(
            "POST /t/{}/oauth2/introspect HTTP/1.1\r\nHost: perf\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            p.tenant,
            body.len()
        )
        .into_bytes()
    }
}

impl Caller for HttpCaller {
    fn call(&self, kind: RequestKind) -> Call {
        let request = match kind {
            RequestKind::Introspect => self.introspect_request(),
            _ => format!(
                "GET /t/{}/.well-known/jwks.json HTTP/1.1\r\nHost: perf\r\n\r\n",
                self.plan.tenant
            )
            .into_bytes(),
        };
        let pooled = self.pool.borrow_mut().pop();
        let pool = Rc::clone(&self.pool);
        let http = self.http;
        Box::pin(async move {
            let mut stream = match pooled {
                Some(stream) => stream,
                None => {
                    let stream = TcpStream::connect(http)
                        .await
                        .map_err(|_| "connect".to_owned())?;
                    let _ = stream.set_nodelay(true);
                    stream
                }
            };
            stream
                .write_all(&request)
                .await
                .map_err(|_| "write".to_owned())?;
            let (status, body, close) = read_answer(&mut stream).await?;
            if !close {
                pool.borrow_mut().push(stream);
            }
            if status != 200 {
                return Err(format!("http_{status}"));
            }
            if kind == RequestKind::Introspect && !body.starts_with(br#"{"active":true"#) {
                return Err("inactive".into());
            }
            Ok(())
        })
    }
}

/// Reads one answer: its status, body (`Content-Length` framed), and
/// whether the server closes the connection after it.
async fn read_answer(stream: &mut TcpStream) -> Result<(u16, Vec<u8>, bool), String> {
    let mut buffer = Vec::with_capacity(4096);
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| "read".to_owned())?;
        if n == 0 {
            return Err("closed".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut answer = httparse::Response::new(&mut headers);
        let head = match answer.parse(&buffer) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err("malformed".into()),
        };
        let length = answer
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| {
                std::str::from_utf8(h.value)
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
            .unwrap_or(0);
        let status = answer.code.unwrap_or(0);
        let close = answer.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close")
        });
        while buffer.len() < head + length {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|_| "read".to_owned())?;
            if n == 0 {
                return Err("closed".into());
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        return Ok((status, buffer[head..head + length].to_vec(), close));
    }
}

/// Runs the baseline (`jwks`) then `introspect`, each at `plan.rate` for
/// `plan.duration`.
///
/// # Errors
/// When the key is not Ed25519 PKCS#8 or a generator cannot start.
pub fn run(plan: &IntrospectPlan) -> Result<Vec<Phase>, String> {
    Ed25519KeyPair::from_pkcs8(&plan.key).map_err(|e| format!("--key: {e}"))?;
    let shared = Arc::new(plan.clone());
    let mut phases = Vec::new();
    for (name, kind) in [
        ("jwks", RequestKind::Jwks),
        ("introspect", RequestKind::Introspect),
    ] {
        let config = LoadConfig {
            profile: RateProfile::Constant {
                rate: plan.rate,
                duration: plan.duration,
            },
            threads: plan.threads,
            max_in_flight: 512,
            pace_quantum: std::time::Duration::ZERO,
        };
        let progress = Arc::new(Progress::default());
        let outcome = engine::run(
            &config,
            &Mix::only(kind),
            |thread| {
                let plan = Arc::clone(&shared);
                async move {
                    let key = Ed25519KeyPair::from_pkcs8(&plan.key).map_err(|e| e.to_string())?;
                    Ok(HttpCaller {
                        http: plan.http,
                        pool: Rc::default(),
                        key: Rc::new(key),
                        plan,
                        thread,
                        next: Cell::new(0),
                    })
                }
            },
            &progress,
        )?;
        let r = &outcome.recorder;
        phases.push(Phase {
            name,
            latency: r.latency(),
            sent: r.sent_count(),
            ok: r.ok_count(),
            errors: r.errors().iter().map(|(k, v)| (k.clone(), *v)).collect(),
            elapsed: outcome.elapsed,
        });
    }
    Ok(phases)
}
