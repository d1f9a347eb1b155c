//! `sigil-perf`: what capacity engineers size deployments with.
//!
//! What it does: open-loop load (arrivals scheduled from the rate profile,
//! never from the server's speed: [`schedule`]), latency measured from the
//! intended send time into hdrhistogram ([`record`]), per-second time
//! series, JSON reports and SVG charts ([`chart`]), and the physical
//! baseline measured in the same run ([`raw`]).
//!
//! It talks to the appliance only as a client does, through `sigil-proto`
//! (requests, typed results, TLS, `--target` resolution), and learns the
//! shape of a seeded directory from `seed-plan`: it links no part of the
//! server or of the directory (scripts/test.sh checks).
//!
//! What it does not do: flatter. No closed-loop mode, no latency measured
//! from the actual send time, no figure without its baseline.
// `deny`, not `forbid`: src/pacer.rs registers a timerfd with tokio's
// reactor, whose API is `unsafe` (an I/O-safety promise an OwnedFd keeps).
#![deny(unsafe_code)]

pub mod capacity;
pub mod chart;
pub mod cpu;
pub mod engine;
pub mod hdrlog;
pub mod http;
pub mod pacer;
pub mod progress;
pub mod quic;
pub mod raw;
pub mod record;
pub mod report;
pub mod schedule;
pub mod soak;
