//! The physical baseline: AWS-LC signing on one core, per key spec,
//! measured in the same run as the load it is compared with.

use std::time::{Duration, Instant};

use serde::Serialize;
use signer::jwt::{encoded_header, TokenClaims, TokenLifetime, TokenType, UnsignedJwt};
use signer::{KeySpec, SigningKey, SoftwareKey, Timestamp};

/// One key spec's raw signing figures.
#[derive(Debug, Clone, Serialize)]
pub struct RawResult {
    /// Key spec, e.g. `EdDSA`, `RS256-2048`.
    pub spec: String,
    /// Signatures per second on one thread (wall clock).
    pub ops_per_sec: f64,
    /// CPU time per signature (µs), from the thread's scheduler counter.
    pub cpu_us_per_op: f64,
    /// Signatures made.
    pub iterations: u64,
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat`
/// (nanoseconds). `None` where the kernel does not offer it.
pub fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// A representative signing input: the header and payload of an ID token.
fn signing_input(key: &dyn SigningKey) -> Vec<u8> {
    let claims = TokenClaims {
        issuer: "https://sigil.example/t/acme".into(),
        subject: "00u1a2b3c4d5e6f7g8h9".into(),
        audience: vec!["app-eddsa".into()],
        nonce: Some("n-0S6_WzA2Mj".into()),
        amr: vec!["pwd".into()],
        session_id: Some("sid-5xK3mB2Q".into()),
        ..TokenClaims::default()
    };
    let header = encoded_header(key, TokenType::IdToken);
    UnsignedJwt::build(
        &header,
        &claims,
        Timestamp::from_secs(1_800_000_000),
        TokenLifetime::MAX,
        "AAAAAAAAAAAAAAAAAAAAAA",
    )
    .map(|jwt| jwt.signing_input().to_vec())
    .unwrap_or_default()
}

/// Signs with a fresh key of `spec` on the calling thread for `duration`.
///
/// # Errors
/// When the key cannot be generated or a signature fails.
pub fn measure(spec: KeySpec, duration: Duration) -> Result<RawResult, signer::Error> {
    let key = SoftwareKey::generate(spec)?;
    let message = signing_input(&key);
    // Warm up caches and lazy initialisation outside the measurement.
    for _ in 0..10 {
        key.sign(&message)?;
    }
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    let mut iterations = 0u64;
    while start.elapsed() < duration {
        for _ in 0..16 {
            key.sign(&message)?;
        }
        iterations += 16;
    }
    let wall = start.elapsed();
    let cpu = match (cpu_start, thread_cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall,
    };
    Ok(RawResult {
        spec: spec.name().to_owned(),
        ops_per_sec: iterations as f64 / wall.as_secs_f64(),
        cpu_us_per_op: cpu.as_secs_f64() * 1e6 / iterations as f64,
        iterations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_positive_rate_and_cpu_cost() {
        let r = measure(KeySpec::EdDsa, Duration::from_millis(50)).expect("measure");
        assert!(
            r.iterations > 0 && r.ops_per_sec > 0.0 && r.cpu_us_per_op > 0.0,
            "{r:?}"
        );
        assert!(
            thread_cpu_time().is_some(),
            "this kernel offers /proc/thread-self/schedstat"
        );
    }
}
