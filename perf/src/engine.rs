//! The open-loop load engine: generator threads, each with its own
//! current-thread tokio runtime and its own connections, send requests at
//! their scheduled times whatever the server does, and record each answer
//! against the time it was *meant* to be sent.
//!
//! Arrivals are dealt round-robin to the threads. tokio's timer has 1 ms
//! granularity, so a thread wakes every millisecond at most and sends every
//! arrival that is due; how late each send left (the send lag) is recorded
//! separately, so a report shows how much of the latency the generator
//! itself added. Requests in flight are bounded per thread; an arrival past
//! the bound is recorded as `client_backlog`, never delayed.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::record::Recorder;
use crate::schedule::{Arrivals, RateProfile};

/// What one arrival of a load asks the node for: the kinds of request a
/// [`Mix`] deals (`revoke` is two requests: a session made, then revoked).
/// Not to be confused with `sigil_proto::Operation`, the wire operation a
/// [`Caller`] turns it into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Issue an OIDC ID token.
    IdToken,
    /// Issue an access token.
    AccessToken,
    /// Issue a signed SAML Response.
    Saml,
    /// Validate a session.
    SessionValidate,
    /// Sign a user in: create a session (made durable and replicated).
    Login,
    /// Create then revoke a session.
    Revoke,
    /// Rotate a refresh token (issue 19): each generator thread keeps the
    /// tokens its refreshes returned and presents them again; a new family
    /// (`access_token` with `offline: true`) only when none is free.
    Refresh,
    /// `POST oauth2/introspect` over HTTP (issue 19; [`crate::http`]).
    Introspect,
    /// `GET .well-known/jwks.json` over HTTP: the introspection baseline.
    Jwks,
    /// `authenticate` (issue 18) with the right password: a password
    /// verified on the node's hashing pool, then a session made; `SUCCESS`
    /// counts as ok, any other status under its name in `errors`.
    Authenticate,
    /// `authenticate` with a wrong password for a user the tenant does not
    /// have (a credential-stuffing flood): the node verifies it against its
    /// dummy hash, the full argon2id work, and answers
    /// `invalid_credentials`; nobody is locked out.
    AuthenticateWrong,
}

impl RequestKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::IdToken => "id-token",
            RequestKind::AccessToken => "access-token",
            RequestKind::Saml => "saml",
            RequestKind::SessionValidate => "session-validate",
            RequestKind::Login => "login",
            RequestKind::Revoke => "revoke",
            RequestKind::Refresh => "refresh",
            RequestKind::Introspect => "introspect",
            RequestKind::Jwks => "jwks",
            RequestKind::Authenticate => "authenticate",
            RequestKind::AuthenticateWrong => "authenticate-wrong",
        }
    }

    /// Whether the load acts with prepared sessions (everything but the
    /// sign-ins themselves and the HTTP requests).
    pub fn needs_session(self) -> bool {
        !matches!(
            self,
            RequestKind::Authenticate
                | RequestKind::AuthenticateWrong
                | RequestKind::Introspect
                | RequestKind::Jwks
        )
    }
}

impl std::str::FromStr for RequestKind {
    type Err = String;

    fn from_str(s: &str) -> Result<RequestKind, String> {
        [
            RequestKind::IdToken,
            RequestKind::AccessToken,
            RequestKind::Saml,
            RequestKind::SessionValidate,
            RequestKind::Login,
            RequestKind::Revoke,
            RequestKind::Refresh,
            RequestKind::Introspect,
            RequestKind::Jwks,
            RequestKind::Authenticate,
            RequestKind::AuthenticateWrong,
        ]
        .into_iter()
        .find(|op| op.name() == s)
        .ok_or_else(|| format!("unknown operation {s:?}: use id-token, access-token, saml, session-validate, login, revoke, refresh, authenticate, authenticate-wrong"))
    }
}

/// A weighted mix of operations, dealt deterministically (smooth weighted
/// round-robin), so two runs of the same mix send the same sequence.
#[derive(Debug, Clone)]
pub struct Mix {
    weights: Vec<(RequestKind, u32)>,
}

impl Mix {
    /// Parses `id-token=80,saml=10,session-validate=10` (a bare name means
    /// weight 1).
    ///
    /// # Errors
    /// For unknown operations, zero total weight, or malformed weights.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of {name:?} must be a whole number"))?;
            weights.push((name.trim().parse()?, weight));
        }
        if weights.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
            return Err("the mix needs at least one operation with a weight above 0".into());
        }
        Ok(Mix { weights })
    }

    /// Whether any request of the mix acts with a prepared session.
    pub fn needs_sessions(&self) -> bool {
        self.weights
            .iter()
            .any(|(kind, weight)| *weight > 0 && kind.needs_session())
    }

    /// A mix of one kind of request.
    pub fn only(kind: RequestKind) -> Mix {
        Mix {
            weights: vec![(kind, 1)],
        }
    }

    fn dealer(&self) -> Dealer {
        Dealer {
            weights: self.weights.clone(),
            current: vec![0; self.weights.len()],
        }
    }
}

struct Dealer {
    weights: Vec<(RequestKind, u32)>,
    current: Vec<i64>,
}

impl Dealer {
    fn next(&mut self) -> RequestKind {
        let total: i64 = self.weights.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut best = 0;
        for (i, (_, w)) in self.weights.iter().enumerate() {
            self.current[i] += i64::from(*w);
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= total;
        self.weights[best].0
    }
}

/// A boxed call: resolves to `Ok` or the error code of the answer.
pub type Call = Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// What sends one request. Each generator thread makes its own (its own
/// connection), so implementations need not be `Send`.
pub trait Caller {
    /// Sends a request of `kind` and resolves when its answer arrived.
    fn call(&self, kind: RequestKind) -> Call;
}

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The arrival rate over time.
    pub profile: RateProfile,
    /// Generator threads (each with its own connection).
    pub threads: usize,
    /// Requests in flight per thread before arrivals count as
    /// `client_backlog`.
    pub max_in_flight: usize,
    /// Each thread's pacer wakes at most once per this (zero: for every
    /// request on time); see [`crate::pacer`].
    pub pace_quantum: Duration,
}

/// Live counters for the progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests sent.
    pub sent: AtomicU64,
    /// Successful answers.
    pub ok: AtomicU64,
    /// Errors.
    pub errors: AtomicU64,
}

/// The outcome of a run: what every thread recorded, merged, and how late
/// the generator sent (µs).
#[derive(Debug)]
pub struct Outcome {
    /// Latencies, errors, time series.
    pub recorder: Recorder,
    /// Send lag: actual send time minus intended send time.
    pub send_lag_us: Histogram<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Wall-clock time of the run's start (the schedule's zero).
    pub started_at: std::time::SystemTime,
}

/// Runs the load: `connect(thread)` makes each thread's caller.
///
/// # Errors
/// When a thread cannot start its runtime or its caller cannot connect.
pub fn run<C, F, Fut>(
    config: &LoadConfig,
    mix: &Mix,
    connect: F,
    progress: &Arc<Progress>,
) -> Result<Outcome, String>
where
    C: Caller + 'static,
    F: Fn(usize) -> Fut + Sync,
    Fut: Future<Output = Result<C, String>>,
{
    let threads = config.threads.max(1);
    let start = Instant::now() + Duration::from_millis(200);
    let started_at = std::time::SystemTime::now() + Duration::from_millis(200);
    let results: Vec<Result<(Recorder, Histogram<u64>), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let connect = &connect;
                let progress = Arc::clone(progress);
                let mix = mix.clone();
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("generator runtime: {e}"))?;
                    runtime.block_on(async move {
                        let caller = Rc::new(connect(thread).await?);
                        generate(config, &mix, thread, threads, caller, start, &progress).await
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a generator thread panicked".into()))
            })
            .collect()
    });
    let mut recorder = Recorder::new();
    let mut send_lag_us = lag_histogram();
    for result in results {
        let (r, lag) = result?;
        recorder.merge(&r);
        let _ = send_lag_us.add(&lag);
    }
    Ok(Outcome {
        recorder,
        send_lag_us,
        elapsed: start.elapsed(),
        started_at,
    })
}

fn lag_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

async fn generate<C: Caller + 'static>(
    config: &LoadConfig,
    mix: &Mix,
    thread: usize,
    threads: usize,
    caller: Rc<C>,
    start: Instant,
    progress: &Arc<Progress>,
) -> Result<(Recorder, Histogram<u64>), String> {
    let recorder = Rc::new(std::cell::RefCell::new(Recorder::new()));
    let mut lag = lag_histogram();
    let in_flight = Rc::new(std::cell::Cell::new(0usize));
    let mut dealer = mix.dealer();
    let pacer = crate::pacer::Pacer::with_quantum(config.pace_quantum);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            for (index, intended) in Arrivals::new(config.profile).enumerate() {
                if index % threads != thread {
                    continue;
                }
                let due = start + intended;
                pacer.sleep_until(due).await;
                let now = Instant::now();
                let _ = lag.record(
                    u64::try_from(now.saturating_duration_since(due).as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1),
                );
                recorder.borrow_mut().sent(intended);
                progress.sent.fetch_add(1, Ordering::Relaxed);
                let kind = dealer.next();
                if in_flight.get() >= config.max_in_flight {
                    recorder
                        .borrow_mut()
                        .finished(intended, intended, Err("client_backlog"));
                    progress.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                in_flight.set(in_flight.get() + 1);
                let call = caller.call(kind);
                let recorder = Rc::clone(&recorder);
                let in_flight = Rc::clone(&in_flight);
                let progress = Arc::clone(progress);
                tokio::task::spawn_local(async move {
                    let result = call.await;
                    let completed = start.elapsed();
                    match &result {
                        Ok(()) => progress.ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => progress.errors.fetch_add(1, Ordering::Relaxed),
                    };
                    recorder.borrow_mut().finished(
                        intended,
                        completed,
                        result.as_ref().map(|_| ()).map_err(String::as_str),
                    );
                    in_flight.set(in_flight.get() - 1);
                });
            }
            // Let the last answers arrive (bounded: a server that never
            // answers does not hold the report hostage).
            let deadline = Instant::now() + Duration::from_secs(10);
            while in_flight.get() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    let unanswered = in_flight.get();
    let mut recorder = recorder.borrow().clone();
    for _ in 0..unanswered {
        recorder.finished(Duration::ZERO, start.elapsed(), Err("no_answer"));
    }
    Ok((recorder, lag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_deals_by_weight_deterministically() {
        let mix = Mix::parse("id-token=3,saml=1").expect("mix");
        let mut dealer = mix.dealer();
        let dealt: Vec<RequestKind> = (0..8).map(|_| dealer.next()).collect();
        assert_eq!(dealt.iter().filter(|&&o| o == RequestKind::Saml).count(), 2);
        assert_eq!(
            dealt.iter().filter(|&&o| o == RequestKind::IdToken).count(),
            6
        );
        assert!(Mix::parse("id-token=0").is_err());
        assert!(Mix::parse("bogus").is_err());
        assert!(Mix::parse("saml=x").is_err());
        let flood = Mix::parse("authenticate=1,authenticate-wrong=3").expect("mix");
        assert!(!flood.needs_sessions());
        assert!(Mix::parse("authenticate,id-token")
            .expect("mix")
            .needs_sessions());
        assert!(Mix::parse("authenticate,id-token=0").is_ok_and(|m| !m.needs_sessions()));
    }

    /// A caller whose answers take a fixed time: the engine must keep the
    /// arrival rate regardless, and measure the wait from the intended time.
    struct SlowCaller(Duration);

    impl Caller for SlowCaller {
        fn call(&self, _kind: RequestKind) -> Call {
            let delay = self.0;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(())
            })
        }
    }

    #[test]
    fn open_loop_keeps_the_rate_while_answers_are_slow() {
        let config = LoadConfig {
            profile: RateProfile::Constant {
                rate: 2000.0,
                duration: Duration::from_secs(1),
            },
            threads: 2,
            max_in_flight: 10_000,
            pace_quantum: Duration::ZERO,
        };
        let progress = Arc::new(Progress::default());
        let outcome = run(
            &config,
            &Mix::only(RequestKind::IdToken),
            |_| async { Ok(SlowCaller(Duration::from_millis(20))) },
            &progress,
        )
        .expect("run");
        let r = &outcome.recorder;
        // 2000 sent in one second although each answer takes 20 ms: a
        // closed loop of 2 threads would have managed about 100.
        assert!(
            (1990..=2010).contains(&r.sent_count()),
            "{}",
            r.sent_count()
        );
        assert_eq!(r.ok_count(), r.sent_count());
        let latency = r.latency();
        assert!(
            latency.p50 >= 20_000,
            "latency counts the whole wait: {latency:?}"
        );
        assert_eq!(progress.sent.load(Ordering::Relaxed), r.sent_count());
    }

    #[test]
    fn backlog_past_the_bound_is_counted_not_delayed() {
        let config = LoadConfig {
            profile: RateProfile::Constant {
                rate: 1000.0,
                duration: Duration::from_millis(500),
            },
            threads: 1,
            max_in_flight: 10,
            pace_quantum: Duration::ZERO,
        };
        let outcome = run(
            &config,
            &Mix::only(RequestKind::IdToken),
            |_| async { Ok(SlowCaller(Duration::from_millis(200))) },
            &Arc::new(Progress::default()),
        )
        .expect("run");
        let r = &outcome.recorder;
        assert!(
            r.errors().get("client_backlog").copied().unwrap_or(0) > 300,
            "{:?}",
            r.errors()
        );
        assert!((495..=505).contains(&r.sent_count()));
    }
}
