//! `sigil-perf`: load, Monday-morning spike and soak against a Sigil
//! appliance, open-loop with coordinated-omission-corrected latency.
//!
//! Not built yet; see issue 9. Until then the criterion benchmarks in
//! `benches/` are the only performance figures.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    eprintln!("sigil-perf: not built yet (issue 9)");
    std::process::ExitCode::from(2)
}
