//! Charts are real SVG files with the series of the run in them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use perf::record::Recorder;

#[test]
fn throughput_and_latency_charts_are_written() {
    let mut recorder = Recorder::new();
    for ms in 0..3000u64 {
        let at = Duration::from_millis(ms);
        recorder.sent(at);
        let outcome = if ms % 100 == 0 {
            Err("overloaded")
        } else {
            Ok(())
        };
        recorder.finished(at, at + Duration::from_micros(300 + ms % 7 * 100), outcome);
    }
    let timeline = recorder.timeline();
    assert_eq!(timeline.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let throughput = dir.path().join("throughput.svg");
    let latency = dir.path().join("latency.svg");
    perf::chart::throughput(&throughput, &timeline, "test throughput").unwrap();
    perf::chart::latency(&latency, &timeline, "test latency").unwrap();
    for (path, needles) in [
        (&throughput, ["scheduled", "errors"]),
        (&latency, ["p99.9", "p50"]),
    ] {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        for needle in needles {
            assert!(svg.contains(needle), "{} lacks {needle}", path.display());
        }
        assert!(
            svg.contains("<polyline"),
            "{} has no series",
            path.display()
        );
    }
}
