//! criterion micro-benchmarks of Sigil's hot-path pieces. The benchmarks
//! live in `benches/benches/`; this library is empty. See
//! `docs/BENCHMARKING.md` for how to run them and the measured tables.
#![forbid(unsafe_code)]
