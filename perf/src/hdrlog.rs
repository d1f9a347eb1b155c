//! HdrHistogram interval logs: `--hdr-log FILE` writes a run's latencies
//! one interval per second (the V2 compressed format that the Java
//! `HistogramLogReader` and every HdrHistogram port read), and
//! `sigil-perf merge` combines the logs of runs made at once from several
//! generator machines into one report: capacity engineers outgrow one load
//! machine.
//!
//! Each interval holds the latencies (µs, from the intended send time) of
//! the successes answered in that second of the run. Seconds the run did
//! not cover in full (the last, short one and the seconds after the end,
//! where only late answers land) are tagged [`PARTIAL`]: they are in the
//! file, so no answer is lost, but a merge leaves them out of its span, as
//! the charts do.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::record::Percentiles;

/// The tag of an interval the run did not cover in full.
pub const PARTIAL: &str = "partial";

/// Why a log could not be written, read or merged.
#[derive(Debug, thiserror::Error)]
pub enum HdrLogError {
    /// The file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not an interval log as written by `--hdr-log`.
    #[error("{path}: {what}")]
    Format {
        /// The log file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The logs cannot be combined.
    #[error("{0}")]
    Merge(String),
}

/// One second of a run: when it started (from the start of the run) and the
/// latencies of the successes answered in it.
pub struct Second<'a> {
    /// Offset of the second from the start of the run.
    pub offset: Duration,
    /// Its latencies (µs).
    pub latency: &'a Histogram<u64>,
    /// Whether the run covered this second in full.
    pub whole: bool,
}

/// Writes `seconds` as an interval log to `path`; `started_at` is the wall
/// time of the run's start (the log's StartTime and BaseTime).
///
/// # Errors
/// [`HdrLogError::Io`] when the file cannot be written.
pub fn write(
    path: &Path,
    started_at: SystemTime,
    comment: &str,
    seconds: &[Second<'_>],
) -> Result<(), HdrLogError> {
    let io = |source| HdrLogError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .add_comment("latencies in microseconds from the intended send time, successes only")
            .with_start_time(started_at)
            .with_base_time(started_at)
            .begin_log_with(&mut bytes, &mut serializer)
            .map_err(io)?;
        let partial = Tag::new(PARTIAL);
        for second in seconds {
            writer
                .write_histogram(
                    second.latency,
                    second.offset,
                    Duration::from_secs(1),
                    if second.whole { None } else { partial },
                )
                .map_err(|e| io(std::io::Error::other(format!("{e:?}"))))?;
        }
    }
    std::fs::write(path, bytes).map_err(io)
}

/// One interval read back: its wall-clock start (s since the epoch), its
/// length (s), whether it is whole, and its histogram.
pub struct Interval {
    /// Start, seconds since the Unix epoch.
    pub start: f64,
    /// Length in seconds.
    pub duration: f64,
    /// Not tagged [`PARTIAL`].
    pub whole: bool,
    /// Latencies (µs).
    pub latency: Histogram<u64>,
}

/// An interval log read back.
pub struct Log {
    /// Where it came from.
    pub path: PathBuf,
    /// Its intervals, in file order.
    pub intervals: Vec<Interval>,
}

/// Reads an interval log written by `--hdr-log` (or any V2 interval log
/// with a BaseTime or absolute timestamps).
///
/// # Errors
/// [`HdrLogError`] when the file cannot be read or parsed.
pub fn read(path: &Path) -> Result<Log, HdrLogError> {
    let bytes = std::fs::read(path).map_err(|source| HdrLogError::Io {
        path: path.to_owned(),
        source,
    })?;
    let format = |what: String| HdrLogError::Format {
        path: path.to_owned(),
        what,
    };
    let mut base = 0.0;
    let mut intervals = Vec::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        match entry.map_err(|e| format(format!("not an HdrHistogram interval log ({e:?})")))? {
            LogEntry::BaseTime(t) => base = t.as_secs_f64(),
            LogEntry::StartTime(_) => {}
            LogEntry::Interval(h) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(h.encoded_histogram())
                    .map_err(|e| format(format!("an interval's histogram: {e}")))?;
                let latency: Histogram<u64> = deserializer
                    .deserialize(&mut Cursor::new(raw))
                    .map_err(|e| format(format!("an interval's histogram: {e:?}")))?;
                intervals.push(Interval {
                    start: base + h.start_timestamp().as_secs_f64(),
                    duration: h.duration().as_secs_f64(),
                    whole: h.tag().map(|t| t.as_str()) != Some(PARTIAL),
                    latency,
                });
            }
        }
    }
    if intervals.is_empty() {
        return Err(format("holds no intervals".into()));
    }
    Ok(Log {
        path: path.to_owned(),
        intervals,
    })
}

/// What `sigil-perf merge` reports. Field names are a contract
/// (docs/perf.md "Merge").
#[derive(Debug, Clone, Serialize)]
pub struct Merged {
    /// The logs combined.
    pub files: Vec<String>,
    /// Successes in the common span, all logs together.
    pub count: u64,
    /// Length of the time every log covers (s).
    pub common_span_s: f64,
    /// Successes per second in that span, all logs together.
    pub rate_rps: f64,
    /// Latency of those successes (µs, from the intended send time).
    pub latency_us: Percentiles,
}

/// Combines logs of runs made at once: the whole intervals whose middle
/// falls in the span every log covers are added up; the rate is the sum of
/// each log's rate over its intervals in that span.
///
/// # Errors
/// [`HdrLogError::Merge`] when there is nothing to merge or the runs do not
/// overlap in time.
pub fn merge(logs: &[Log]) -> Result<Merged, HdrLogError> {
    if logs.is_empty() {
        return Err(HdrLogError::Merge("no logs to merge".into()));
    }
    fn whole(log: &Log) -> Vec<&Interval> {
        log.intervals.iter().filter(|i| i.whole).collect()
    }
    let mut from = f64::MIN;
    let mut to = f64::MAX;
    for log in logs {
        let intervals = whole(log);
        let (Some(first), Some(last)) = (intervals.first(), intervals.last()) else {
            return Err(HdrLogError::Merge(format!(
                "{}: no whole second to merge",
                log.path.display()
            )));
        };
        from = from.max(first.start);
        to = to.min(last.start + last.duration);
    }
    if to <= from {
        return Err(HdrLogError::Merge(
            "the runs do not overlap in time: merge combines runs made at once (start the generators together)".into(),
        ));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| HdrLogError::Merge(format!("{e:?}")))?;
    let mut rate_rps = 0.0;
    for log in logs {
        let (mut count, mut seconds) = (0u64, 0.0);
        for interval in whole(log) {
            let middle = interval.start + interval.duration / 2.0;
            if (from..=to).contains(&middle) {
                latency
                    .add(&interval.latency)
                    .map_err(|e| HdrLogError::Merge(format!("{}: {e:?}", log.path.display())))?;
                count += interval.latency.len();
                seconds += interval.duration;
            }
        }
        if seconds > 0.0 {
            rate_rps += count as f64 / seconds;
        }
    }
    Ok(Merged {
        files: logs.iter().map(|l| l.path.display().to_string()).collect(),
        count: latency.len(),
        common_span_s: to - from,
        rate_rps,
        latency_us: Percentiles::of(&latency),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn second_of(latencies: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
        for &l in latencies {
            h.record(l).expect("in bounds");
        }
        h
    }

    fn log(dir: &Path, name: &str, started_at: SystemTime, per_second: &[Vec<u64>]) -> PathBuf {
        let histograms: Vec<Histogram<u64>> = per_second.iter().map(|s| second_of(s)).collect();
        let last = histograms.len() - 1;
        let seconds: Vec<Second<'_>> = histograms
            .iter()
            .enumerate()
            .map(|(i, h)| Second {
                offset: Duration::from_secs(i as u64),
                latency: h,
                whole: i != last,
            })
            .collect();
        let path = dir.join(name);
        write(&path, started_at, "test run", &seconds).expect("written");
        path
    }

    #[test]
    fn a_log_reads_back_as_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let path = log(
            dir.path(),
            "a.hlog",
            t0,
            &[vec![100, 200], vec![300], vec![5_000]],
        );
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(text.contains("#[BaseTime: 1800000000"), "{text}");
        let back = read(&path).expect("read");
        assert_eq!(back.intervals.len(), 3);
        assert_eq!(back.intervals[0].start, 1_800_000_000.0);
        assert_eq!(back.intervals[1].start, 1_800_000_001.0);
        assert_eq!(back.intervals[0].latency.len(), 2);
        assert_eq!(back.intervals[1].latency.max(), 300);
        assert!(back.intervals[1].whole && !back.intervals[2].whole);
    }

    #[test]
    fn runs_made_at_once_merge_over_the_span_they_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // A: 4 whole seconds from t0, 10 answers each at 1 ms.
        let a = log(dir.path(), "a.hlog", t0, &vec![vec![1_000; 10]; 5]);
        // B: started 2 s later, 4 whole seconds, 20 answers each at 9 ms.
        let b = log(
            dir.path(),
            "b.hlog",
            t0 + Duration::from_secs(2),
            &vec![vec![9_000; 20]; 5],
        );
        let merged = merge(&[read(&a).expect("a"), read(&b).expect("b")]).expect("merged");
        // Shared: t0+2 .. t0+4 (A's whole seconds end at +4).
        assert_eq!(merged.common_span_s, 2.0);
        assert_eq!(merged.count, 2 * 10 + 2 * 20);
        assert_eq!(merged.rate_rps, 30.0);
        assert!(merged.latency_us.p50 >= 8_990, "{:?}", merged.latency_us);
        assert!(merged.latency_us.max >= 8_990 && merged.latency_us.mean < 9_000.0);
        assert_eq!(merged.files.len(), 2);
    }

    #[test]
    fn logs_that_cannot_be_merged_are_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = log(dir.path(), "a.hlog", t0, &vec![vec![1_000]; 3]);
        let late = log(
            dir.path(),
            "late.hlog",
            t0 + Duration::from_secs(60),
            &vec![vec![1_000]; 3],
        );
        let error =
            merge(&[read(&a).expect("a"), read(&late).expect("late")]).expect_err("no overlap");
        assert!(error.to_string().contains("do not overlap"), "{error}");
        let junk = dir.path().join("junk.hlog");
        std::fs::write(&junk, "not a log\n").expect("junk");
        assert!(read(&junk).is_err());
        assert!(matches!(
            read(&dir.path().join("missing.hlog")),
            Err(HdrLogError::Io { .. })
        ));
        assert!(merge(&[]).is_err());
    }
}
