//! `sigil-perf`: what capacity engineers size deployments with.
//!
//! What it does: open-loop load (arrivals scheduled from the rate profile,
//! never from the server's speed: [`schedule`]), latency measured from the
//! intended send time into hdrhistogram ([`record`]), per-second time
//! series, JSON reports and SVG charts ([`chart`]), and the physical
//! baseline measured in the same run ([`raw`]).
//!
//! What it does not do: flatter. No closed-loop mode, no latency measured
//! from the actual send time, no figure without its baseline.
#![forbid(unsafe_code)]

pub mod chart;
pub mod engine;
pub mod quic;
pub mod raw;
pub mod record;
pub mod report;
pub mod schedule;
pub mod soak;
