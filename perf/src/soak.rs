//! The soak profile's watch on the server: its RSS, open files and CPU
//! sampled from `/metrics` through the run, and a verdict on growth and
//! latency drift (first tenth of the run against the last tenth).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::record::SecondPoint;
use crate::report::scrape;

/// One sample of the server.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerSample {
    /// Seconds since the start.
    pub t: f64,
    /// Resident memory, bytes.
    pub resident_bytes: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// CPU seconds so far.
    pub cpu_seconds: f64,
}

/// What a soak found.
#[derive(Debug, Clone, Serialize)]
pub struct SoakSummary {
    /// The samples.
    pub samples: Vec<ServerSample>,
    /// RSS growth, last tenth over first tenth, as a fraction.
    pub rss_growth: Option<f64>,
    /// Open-files growth.
    pub fds_growth: Option<f64>,
    /// p99 drift: median per-second p99 of the last tenth over the first.
    pub p99_drift: Option<f64>,
    /// What exceeded the tolerance.
    pub flags: Vec<String>,
}

/// Samples the server in a thread until finished.
pub struct Sampler {
    samples: Arc<Mutex<Vec<ServerSample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `metrics` every `every`.
    pub fn start(metrics: SocketAddr, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&samples), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            while !st.load(Ordering::Relaxed) {
                if let Ok(usage) = scrape(metrics) {
                    let sample = ServerSample {
                        t: start.elapsed().as_secs_f64(),
                        resident_bytes: usage.resident_bytes,
                        open_fds: usage.open_fds,
                        cpu_seconds: usage.cpu_seconds,
                    };
                    s.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(sample);
                }
                let next = Instant::now() + every;
                while Instant::now() < next && !st.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Sampler {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and judges the run.
    pub fn finish(mut self, timeline: &[SecondPoint], tolerance: f64) -> SoakSummary {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        judge(samples, timeline, tolerance)
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

fn growth(first: Option<f64>, last: Option<f64>) -> Option<f64> {
    match (first, last) {
        (Some(a), Some(b)) if a > 0.0 => Some(b / a - 1.0),
        _ => None,
    }
}

/// The verdict on samples and a per-second timeline.
pub fn judge(samples: Vec<ServerSample>, timeline: &[SecondPoint], tolerance: f64) -> SoakSummary {
    let tenth = |n: usize| (n / 10).max(1);
    let (first, last) = (tenth(samples.len()), tenth(samples.len()));
    let head = |f: fn(&ServerSample) -> f64| median(samples.iter().take(first).map(f).collect());
    let tail =
        |f: fn(&ServerSample) -> f64| median(samples.iter().rev().take(last).map(f).collect());
    let rss_growth = growth(head(|s| s.resident_bytes), tail(|s| s.resident_bytes));
    let fds_growth = growth(head(|s| s.open_fds), tail(|s| s.open_fds));
    let busy: Vec<&SecondPoint> = timeline.iter().filter(|p| p.ok > 0).collect();
    let t = tenth(busy.len());
    let p99_drift = growth(
        median(busy.iter().take(t).map(|p| p.p99_us as f64).collect()),
        median(busy.iter().rev().take(t).map(|p| p.p99_us as f64).collect()),
    );
    let mut flags = Vec::new();
    for (name, value) in [
        ("resident memory", rss_growth),
        ("open files", fds_growth),
        ("p99 latency", p99_drift),
    ] {
        if let Some(g) = value {
            if g > tolerance {
                flags.push(format!(
                    "{name} grew {:.0} % from the first tenth of the run to the last",
                    g * 100.0
                ));
            }
        }
    }
    SoakSummary {
        samples,
        rss_growth,
        fds_growth,
        p99_drift,
        flags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss: f64) -> ServerSample {
        ServerSample {
            t,
            resident_bytes: rss,
            open_fds: 20.0,
            cpu_seconds: t,
        }
    }

    #[test]
    fn growth_is_flagged_and_steadiness_is_not() {
        let leaking: Vec<ServerSample> = (0..50)
            .map(|i| sample(f64::from(i), 100.0 + f64::from(i) * 4.0))
            .collect();
        let summary = judge(leaking, &[], 0.2);
        assert!(summary.rss_growth.is_some_and(|g| g > 1.0));
        assert_eq!(summary.flags.len(), 1, "{:?}", summary.flags);
        let steady: Vec<ServerSample> = (0..50)
            .map(|i| sample(f64::from(i), 100.0 + f64::from(i % 3)))
            .collect();
        assert!(judge(steady, &[], 0.2).flags.is_empty());
    }
}
