//! `sigil-perf capacity`: the highest constant rate this node sustains
//! within a latency target. Short open-loop steps at rising rates
//! (coordinated-omission-corrected latency, as every load here), a step
//! passing when its p99 is within the target and its errors are within
//! the allowed fraction; the search stops at the first failing step and
//! bisects once between it and the last passing one (a first step that
//! fails steps down instead, until one passes). A failing step is tried
//! once more before its rate counts as failed: on a shared machine one
//! stall fails a 3-second step.
//!
//! Before the search, steps at a low rate measure the node's latency
//! floor: the lowest p99 of up to [`FLOOR_TRIES`] of them (a node that has
//! just served a heavy load needs a moment to catch up). Every token waits
//! for its audit record to be written and synced, so the disk's
//! `fdatasync` time sits under every figure, and a busy machine adds its
//! own queueing; where the floor is already above the target, no rate
//! could meet it, and a search held to it would only say "below the
//! lowest rate". The search then holds the steps to the floor plus the
//! target instead ([`effective_target_us`]) and says so, naming both and
//! how much of the floor the audit syncs explain ([`disk_explains`]).
//!
//! The search itself ([`next_rate`], [`verdict`]) is pure, so it is tested
//! without a node; [`search`] runs it over the QUIC API.

use std::time::Duration;

use serde::Serialize;

use crate::quic::{self, LoadPlan};
use crate::raw::RawResult;
use crate::report::Report;
use crate::schedule::RateProfile;

/// How the search steps up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    /// The first step's rate (requests/s).
    pub start: f64,
    /// Each step's rate is the previous one's times this.
    pub factor: f64,
    /// No step goes above this rate.
    pub max: f64,
    /// Length of each step.
    pub step: Duration,
    /// A step passes with its p99 (µs, successes, from the intended send
    /// time) at most this...
    pub p99_target_us: u64,
    /// ...and at most this fraction of its requests refused or failed.
    pub max_error_rate: f64,
    /// Whether to try once between the last passing and the first failing
    /// rate.
    pub bisect: bool,
    /// The rate of the floor step run before the search; `None` runs none
    /// (and never raises the target).
    pub floor_rate: Option<f64>,
    /// Whether a failing step is run once more (after a second's pause)
    /// before the rate counts as failed.
    pub retry: bool,
}

/// What one step measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Offered rate (requests/s).
    pub rate: f64,
    /// `floor` (the low-rate step before the search), `step` (rising),
    /// `down` (falling after a failing first step), `bisect`, or `retry`
    /// (the second try of the rate of the step before it, which failed).
    pub phase: &'static str,
    /// Requests scheduled.
    pub sent: u64,
    /// Successful answers.
    pub ok: u64,
    /// Successful answers per second.
    pub achieved_rps: f64,
    /// Refused or failed requests.
    pub errors: u64,
    /// `errors / sent`.
    pub error_rate: f64,
    /// Latency of successes from the intended send time (µs).
    pub p50_us: u64,
    /// Same, 99th percentile.
    pub p99_us: u64,
    /// Server CPU per successful operation (µs), from its `/metrics`.
    pub server_cpu_us_per_op: Option<f64>,
    /// `server_cpu_us_per_op / raw_cpu_us_per_op`.
    pub overhead_factor: Option<f64>,
    /// The p99 of the node's audit syncs during the step (ms, the upper
    /// bound of its histogram bucket).
    pub audit_sync_p99_ms: Option<f64>,
    /// Whether it met the (effective) target.
    pub passed: bool,
}

/// The result of `sigil-perf capacity` (JSON with `--json`; field names are
/// a contract, docs/perf.md).
#[derive(Debug, Clone, Serialize)]
pub struct CapacityReport {
    /// Always `capacity`.
    pub kind: &'static str,
    /// Appliance QUIC address(es).
    pub target: String,
    /// Operation mix.
    pub mix: String,
    /// OIDC apps rotated (their algorithms are the baseline).
    pub apps: Vec<String>,
    /// The latency target asked for (ms, `--p99-ms`).
    pub p99_target_ms: f64,
    /// The target the steps were held to (ms): `p99_target_ms`, or the
    /// floor plus it when the floor was above it.
    pub effective_p99_target_ms: f64,
    /// Whether the floor was above the target, so the steps were held to
    /// the floor plus the target.
    pub target_raised: bool,
    /// The floor step's rate (requests/s); null without one.
    pub floor_rps: Option<f64>,
    /// The lowest floor step's p99 (ms): this node's latency at a low rate.
    pub floor_p99_ms: Option<f64>,
    /// The p99 of the node's audit syncs in the floor step (ms).
    pub floor_audit_sync_p99_ms: Option<f64>,
    /// Whether those audit syncs explain the floor ([`disk_explains`]);
    /// null without a floor step or sync figure.
    pub floor_explained_by_disk: Option<bool>,
    /// Allowed fraction of errors per step.
    pub max_error_rate: f64,
    /// Length of each step (s).
    pub step_s: f64,
    /// CPUs this machine offers (what the generator and, on loopback, the
    /// node share).
    pub cores: usize,
    /// The CPU model, from /proc/cpuinfo (empty where unknown).
    pub cpu_model: String,
    /// Raw AWS-LC signing, measured in this run before the steps.
    pub raw: Vec<RawResult>,
    /// Raw CPU per signature of the apps' algorithms (µs), mean.
    pub raw_cpu_us_per_op: Option<f64>,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// The highest passing rate (requests/s); null when the first step
    /// failed.
    pub capacity_rps: Option<f64>,
    /// Whether the search stopped at `max` without a failing step (the
    /// capacity is at least this).
    pub capped: bool,
    /// `capacity_rps / cores`.
    pub capacity_per_core: Option<f64>,
    /// Server CPU per operation at the capacity step (µs).
    pub server_cpu_us_per_op: Option<f64>,
    /// The overhead factor at the capacity step.
    pub overhead_factor: Option<f64>,
}

/// Floor steps run at most: the first within the target ends them.
pub const FLOOR_TRIES: usize = 3;

/// Whether the audit syncs explain the floor: their p99 is at least half
/// of it (a sync is one of several waits on a token's way).
pub fn disk_explains(floor_p99_ms: f64, audit_sync_p99_ms: f64) -> bool {
    audit_sync_p99_ms * 2.0 >= floor_p99_ms
}

/// The p99 target (µs) the search holds its steps to, given the floor
/// step's p99: the target itself when the floor is within it; otherwise the
/// floor, rounded up to a whole millisecond, plus the target (the same
/// headroom above the floor that the target gives above zero).
pub fn effective_target_us(target_us: u64, floor_p99_us: Option<u64>) -> u64 {
    match floor_p99_us {
        Some(floor) if floor > target_us => floor.div_ceil(1000) * 1000 + target_us,
        _ => target_us,
    }
}

/// Whether a step with this report met the target.
pub fn verdict(report: &Report, search: &Search) -> bool {
    let errors: u64 = report.errors.values().sum();
    let error_rate = errors as f64 / report.sent.max(1) as f64;
    report.ok > 0
        && report.latency_us.p99 <= search.p99_target_us
        && error_rate <= search.max_error_rate
}

/// The rate of the next step after `steps` (offered rate, passed), or
/// `None` when the search is over: rising by `factor` while steps pass (to
/// `max` at most); when even the first step fails, falling by `factor`
/// until one passes (down to `start / 16`); then, once a passing and a
/// failing rate bracket the capacity, once halfway between them when
/// `bisect`.
pub fn next_rate(steps: &[(f64, bool)], search: &Search) -> Option<f64> {
    let Some(&(last, passed)) = steps.last() else {
        return Some(search.start);
    };
    let first_pass = steps.iter().position(|(_, p)| *p);
    let first_fail = steps.iter().position(|(_, p)| !p);
    match (first_pass, first_fail) {
        (_, None) => {
            let next = round(last * search.factor).min(search.max);
            (passed && next > last).then_some(next)
        }
        (None, Some(_)) => {
            let next = round(last / search.factor);
            (next >= search.start / 16.0 && next < last).then_some(next)
        }
        // The bracket formed with the last step: bisect it once.
        (Some(p), Some(f)) if p.max(f) + 1 == steps.len() && search.bisect => {
            let best = best_passing(steps)?;
            let failed = lowest_failing(steps)?;
            let middle = round((best + failed) / 2.0);
            (middle > best && middle < failed).then_some(middle)
        }
        _ => None,
    }
}

/// The lowest failing rate.
fn lowest_failing(steps: &[(f64, bool)]) -> Option<f64> {
    steps
        .iter()
        .filter(|(_, passed)| !*passed)
        .map(|(rate, _)| *rate)
        .reduce(f64::min)
}

/// The highest passing rate.
pub fn best_passing(steps: &[(f64, bool)]) -> Option<f64> {
    steps
        .iter()
        .filter(|(_, passed)| *passed)
        .map(|(rate, _)| *rate)
        .reduce(f64::max)
}

/// Rates are kept to two significant figures above 100 (1,500/s, 23,000/s):
/// the machine's noise is larger than the digits dropped.
fn round(rate: f64) -> f64 {
    if rate < 100.0 {
        return rate.round().max(1.0);
    }
    let unit = 10f64.powi(rate.log10().floor() as i32 - 1);
    (rate / unit).round() * unit
}

/// The CPUs this process may use and the CPU's model name.
pub fn machine() -> (usize, String) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    (cores, model)
}

/// Runs the search against the node `plan` names (its profile is replaced
/// by each step's constant rate); one line per step on stderr.
///
/// # Errors
/// When the node cannot be reached or the users cannot sign in.
pub fn search(plan: &LoadPlan, search: &Search) -> anyhow::Result<CapacityReport> {
    let prepared = quic::prepare_run(plan)?;
    let run_step = |rate: f64, phase: &'static str, held: &Search| {
        let step_plan = LoadPlan {
            profile: RateProfile::Constant {
                rate,
                duration: held.step,
            },
            charts_dir: None,
            hdr_log: None,
            progress: false,
            ..plan.clone()
        };
        let report = quic::run_prepared(&step_plan, &prepared)?;
        let errors: u64 = report.errors.values().sum();
        let step = Step {
            rate,
            phase,
            sent: report.sent,
            ok: report.ok,
            achieved_rps: report.achieved_rps,
            errors,
            error_rate: errors as f64 / report.sent.max(1) as f64,
            p50_us: report.latency_us.p50,
            p99_us: report.latency_us.p99,
            server_cpu_us_per_op: report.server_cpu_us_per_op,
            overhead_factor: report.overhead_factor,
            audit_sync_p99_ms: report.audit_sync_p99_ms,
            passed: verdict(&report, held),
        };
        eprintln!("{}", step_line(&step, held));
        anyhow::Ok((step, report))
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut target = String::new();
    let mut raw_cpu_us_per_op = None;
    let mut raw = Vec::new();
    let floor = match search.floor_rate {
        Some(rate) => {
            let mut lowest: Option<Step> = None;
            for _ in 0..FLOOR_TRIES {
                let (step, report) = run_step(rate, "floor", search)?;
                target = report.target;
                raw_cpu_us_per_op = report.raw_cpu_us_per_op;
                raw = report.raw;
                steps.push(step.clone());
                let within = step.ok > 0 && step.p99_us <= search.p99_target_us;
                if step.ok > 0 && lowest.as_ref().is_none_or(|l| step.p99_us < l.p99_us) {
                    lowest = Some(step);
                }
                if within {
                    break;
                }
            }
            lowest
        }
        None => None,
    };
    let held = Search {
        p99_target_us: effective_target_us(search.p99_target_us, floor.as_ref().map(|f| f.p99_us)),
        ..*search
    };
    let target_raised = held.p99_target_us != search.p99_target_us;
    if let (true, Some(floor)) = (target_raised, &floor) {
        eprintln!("{}", floor_line(floor, search, &held));
    }
    let mut outcomes: Vec<(f64, bool)> = Vec::new();
    while let Some(rate) = next_rate(&outcomes, &held) {
        let (any_pass, any_fail) = (
            outcomes.iter().any(|(_, p)| *p),
            outcomes.iter().any(|(_, p)| !p),
        );
        if any_fail {
            // Let a node that just fell behind catch up first.
            std::thread::sleep(Duration::from_secs(1));
        }
        let phase = match (any_pass, any_fail) {
            (true, true) => "bisect",
            (false, true) => "down",
            _ => "step",
        };
        let (mut step, mut report) = run_step(rate, phase, &held)?;
        if !step.passed && held.retry {
            // One hiccup of a shared machine (a stalled sync, another
            // process) fails a short step: the rate gets a second try.
            steps.push(step);
            std::thread::sleep(Duration::from_secs(1));
            (step, report) = run_step(rate, "retry", &held)?;
        }
        target = report.target;
        raw_cpu_us_per_op = report.raw_cpu_us_per_op;
        raw = report.raw;
        outcomes.push((rate, step.passed));
        steps.push(step);
    }
    let capacity_rps = best_passing(&outcomes);
    let at_capacity = capacity_rps.and_then(|c| {
        steps
            .iter()
            .find(|s| s.passed && s.rate == c && s.phase != "floor")
    });
    let (cores, cpu_model) = machine();
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(CapacityReport {
        kind: "capacity",
        target,
        mix: plan.mix_text.clone(),
        apps: plan.apps.clone(),
        p99_target_ms: ms(search.p99_target_us),
        effective_p99_target_ms: ms(held.p99_target_us),
        target_raised,
        floor_rps: floor.as_ref().map(|f| f.rate),
        floor_p99_ms: floor.as_ref().map(|f| ms(f.p99_us)),
        floor_audit_sync_p99_ms: floor.as_ref().and_then(|f| f.audit_sync_p99_ms),
        floor_explained_by_disk: floor.as_ref().and_then(|f| {
            f.audit_sync_p99_ms
                .map(|sync| disk_explains(ms(f.p99_us), sync))
        }),
        max_error_rate: search.max_error_rate,
        step_s: search.step.as_secs_f64(),
        cores,
        cpu_model,
        raw,
        raw_cpu_us_per_op,
        capped: capacity_rps.is_some_and(|c| c >= search.max) && outcomes.iter().all(|(_, p)| *p),
        capacity_per_core: capacity_rps.map(|c| c / cores as f64),
        server_cpu_us_per_op: at_capacity.and_then(|s| s.server_cpu_us_per_op),
        overhead_factor: at_capacity.and_then(|s| s.overhead_factor),
        steps,
        capacity_rps,
    })
}

/// What the search says when the floor is above the target.
pub fn floor_line(floor: &Step, asked: &Search, held: &Search) -> String {
    let floor_ms = floor.p99_us as f64 / 1000.0;
    let cause = match floor.audit_sync_p99_ms {
        Some(sync) if disk_explains(floor_ms, sync) => format!(
            " The node's audit syncs (write + fdatasync, which every token waits for) had p99 <= {sync} ms meanwhile: the disk explains most of it."
        ),
        Some(sync) => format!(
            " The node's audit syncs (write + fdatasync, which every token waits for) had p99 <= {sync} ms meanwhile: the disk explains only part of it, the rest is this machine (a busy CPU adds queueing at any rate)."
        ),
        None => String::new(),
    };
    format!(
        "capacity: at {:.0}/s p99 is already {floor_ms:.1} ms (the lowest floor step), above the {} ms target: this node's latency floor.{cause} \
         Holding the steps to the floor + {} ms = {} ms instead.",
        floor.rate,
        asked.p99_target_us as f64 / 1000.0,
        asked.p99_target_us as f64 / 1000.0,
        held.p99_target_us as f64 / 1000.0,
    )
}

/// One step as printed while the search runs.
pub fn step_line(step: &Step, search: &Search) -> String {
    format!(
        "capacity {:<6} {:>8.0}/s for {:.0?}: achieved {:.0}/s  p99 {:.1} ms  errors {} ({:.2} %)  {}",
        step.phase,
        step.rate,
        search.step,
        step.achieved_rps,
        step.p99_us as f64 / 1000.0,
        step.errors,
        step.error_rate * 100.0,
        if step.passed { "pass" } else { "FAIL" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search() -> Search {
        Search {
            start: 1000.0,
            factor: 2.0,
            max: 100_000.0,
            step: Duration::from_secs(3),
            p99_target_us: 5000,
            max_error_rate: 0.001,
            bisect: true,
            floor_rate: Some(200.0),
            retry: true,
        }
    }

    /// Runs the search against a node that sustains `limit`/s exactly.
    fn against(limit: f64, search: &Search) -> Vec<(f64, bool)> {
        let mut steps = Vec::new();
        while let Some(rate) = next_rate(&steps, search) {
            steps.push((rate, rate <= limit));
            assert!(steps.len() < 50, "the search must end: {steps:?}");
        }
        steps
    }

    #[test]
    fn the_search_rises_until_a_step_fails_then_bisects_once() {
        let steps = against(7_000.0, &search());
        assert_eq!(
            steps,
            vec![
                (1000.0, true),
                (2000.0, true),
                (4000.0, true),
                (8000.0, false),
                (6000.0, true),
            ]
        );
        assert_eq!(best_passing(&steps), Some(6000.0));
        // A failing bisection keeps the last rising step.
        let steps = against(5_000.0, &search());
        assert_eq!(steps.last(), Some(&(6000.0, false)));
        assert_eq!(best_passing(&steps), Some(4000.0));
        // Without bisection it stops at the first failure.
        let plain = Search {
            bisect: false,
            ..search()
        };
        assert_eq!(against(7_000.0, &plain).last(), Some(&(8000.0, false)));
    }

    #[test]
    fn the_search_ends_at_its_maximum_or_a_failing_first_step() {
        let capped = Search {
            max: 5000.0,
            ..search()
        };
        let steps = against(1e9, &capped);
        assert_eq!(steps.last(), Some(&(5000.0, true)));
        assert_eq!(next_rate(&steps, &capped), None);
        // Nothing passes: it steps down to a sixteenth of the start.
        let steps = against(10.0, &search());
        assert_eq!(
            steps,
            vec![
                (1000.0, false),
                (500.0, false),
                (250.0, false),
                (130.0, false),
                (65.0, false)
            ]
        );
        assert_eq!(best_passing(&steps), None);
    }

    #[test]
    fn a_failing_first_step_steps_down_then_bisects_once() {
        let steps = against(400.0, &search());
        assert_eq!(
            steps,
            vec![
                (1000.0, false),
                (500.0, false),
                (250.0, true),
                (380.0, true),
            ]
        );
        assert_eq!(best_passing(&steps), Some(380.0));
    }

    #[test]
    fn a_floor_above_the_target_raises_it_by_the_target() {
        // Within the target: unchanged, with or without a floor step.
        assert_eq!(effective_target_us(5000, Some(4999)), 5000);
        assert_eq!(effective_target_us(5000, Some(5000)), 5000);
        assert_eq!(effective_target_us(5000, None), 5000);
        // Above it: the floor, up to a whole ms, plus the target.
        assert_eq!(effective_target_us(5000, Some(12_300)), 18_000);
        assert_eq!(effective_target_us(5000, Some(12_000)), 17_000);
        assert_eq!(effective_target_us(2000, Some(2001)), 5000);
        let floor = Step {
            rate: 200.0,
            phase: "floor",
            sent: 600,
            ok: 600,
            achieved_rps: 200.0,
            errors: 0,
            error_rate: 0.0,
            p50_us: 900,
            p99_us: 12_300,
            server_cpu_us_per_op: None,
            overhead_factor: None,
            audit_sync_p99_ms: Some(10.0),
            passed: false,
        };
        let held = Search {
            p99_target_us: 18_000,
            ..search()
        };
        assert_eq!(
            floor_line(&floor, &search(), &held),
            "capacity: at 200/s p99 is already 12.3 ms (the lowest floor step), above the 5 ms target: \
             this node's latency floor. The node's audit syncs (write + fdatasync, which every token \
             waits for) had p99 <= 10 ms meanwhile: the disk explains most of it. \
             Holding the steps to the floor + 5 ms = 18 ms instead."
        );
        let busy = Step {
            p99_us: 88_800,
            audit_sync_p99_ms: Some(5.0),
            ..floor.clone()
        };
        assert!(
            floor_line(&busy, &search(), &held).contains(
                "p99 <= 5 ms meanwhile: the disk explains only part of it, the rest is this machine"
            ),
            "{}",
            floor_line(&busy, &search(), &held)
        );
        let unknown = Step {
            audit_sync_p99_ms: None,
            ..floor
        };
        assert!(!floor_line(&unknown, &search(), &held).contains("audit syncs"));
        assert!(disk_explains(12.3, 10.0) && disk_explains(10.0, 5.0) && !disk_explains(88.8, 5.0));
    }

    #[test]
    fn rates_keep_two_significant_figures() {
        assert_eq!(round(1537.0), 1500.0);
        assert_eq!(round(23_456.0), 23_000.0);
        assert_eq!(round(96.4), 96.0);
    }
}
