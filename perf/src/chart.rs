//! Charts of a run (SVG through plotters): throughput and latency
//! percentiles over time.

use std::path::Path;

use plotters::prelude::*;

use crate::record::SecondPoint;

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("chart {path}: {message}")]
pub struct ChartError {
    path: String,
    message: String,
}

fn chart_error(path: &Path, e: impl std::fmt::Display) -> ChartError {
    ChartError {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// One line of a chart: its legend label, colour, and value per second.
struct Series {
    label: &'static str,
    color: RGBColor,
    value: fn(&SecondPoint) -> f64,
}

/// Draws answers per second (scheduled, successes, errors) against time.
///
/// # Errors
/// When the file cannot be written.
pub fn throughput(path: &Path, timeline: &[SecondPoint], title: &str) -> Result<(), ChartError> {
    let series = [
        Series {
            label: "scheduled",
            color: RGBColor(150, 150, 150),
            value: |p| p.sent as f64,
        },
        Series {
            label: "ok",
            color: RGBColor(30, 120, 200),
            value: |p| p.ok as f64,
        },
        Series {
            label: "errors",
            color: RGBColor(210, 50, 40),
            value: |p| p.errors as f64,
        },
    ];
    draw(path, title, "per second", &whole_seconds(timeline), &series)
}

/// The seconds the run covered in full: a partly counted second would
/// show as a drop to 0 at the end, which reads as a collapse.
fn whole_seconds(timeline: &[SecondPoint]) -> Vec<SecondPoint> {
    timeline.iter().filter(|p| !p.partial).cloned().collect()
}

/// A chart's title: the profile, the operation mix, the tenants and apps.
pub fn title(profile: &str, mix: &str, tenants: usize, apps: &[String]) -> String {
    format!(
        "{profile}: mix {mix}, {tenants} tenant(s), apps {}",
        apps.join(",")
    )
}

/// Draws p50, p99 and p99.9 latency (ms, from the intended send time)
/// against time; seconds without successes are left out.
///
/// # Errors
/// When the file cannot be written.
pub fn latency(path: &Path, timeline: &[SecondPoint], title: &str) -> Result<(), ChartError> {
    let series = [
        Series {
            label: "p50",
            color: RGBColor(30, 120, 200),
            value: |p| p.p50_us as f64 / 1000.0,
        },
        Series {
            label: "p99",
            color: RGBColor(230, 140, 20),
            value: |p| p.p99_us as f64 / 1000.0,
        },
        Series {
            label: "p99.9",
            color: RGBColor(210, 50, 40),
            value: |p| p.p999_us as f64 / 1000.0,
        },
    ];
    let answered: Vec<SecondPoint> = timeline
        .iter()
        .filter(|p| p.ok > 0 && !p.partial)
        .cloned()
        .collect();
    draw(
        path,
        title,
        "latency (ms, from intended send)",
        &answered,
        &series,
    )
}

fn draw(
    path: &Path,
    title: &str,
    y_desc: &str,
    timeline: &[SecondPoint],
    series: &[Series],
) -> Result<(), ChartError> {
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(path, e))?;
    let x_max = timeline.last().map_or(1.0, |p| p.t as f64 + 1.0);
    let y_max = timeline
        .iter()
        .flat_map(|p| series.iter().map(move |s| (s.value)(p)))
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| chart_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| chart_error(path, e))?;
    for s in series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(
                timeline.iter().map(|p| (p.t as f64, (s.value)(p))),
                color.stroke_width(2),
            ))
            .map_err(|e| chart_error(path, e))?
            .label(s.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| chart_error(path, e))?;
    root.present().map_err(|e| chart_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{mark_partial, Recorder};
    use std::time::Duration;

    #[test]
    fn charts_leave_out_partial_seconds() {
        let mut r = Recorder::new();
        for ms in [0u64, 1_000, 2_000] {
            let at = Duration::from_millis(ms);
            r.sent(at);
            r.finished(at, at + Duration::from_millis(10), Ok(()));
        }
        let mut timeline = r.timeline();
        mark_partial(&mut timeline, Duration::from_millis(2_500));
        let shown: Vec<u64> = whole_seconds(&timeline).iter().map(|p| p.t).collect();
        assert_eq!(shown, [0, 1]);
    }

    #[test]
    fn titles_name_the_operation_mix() {
        let apps = vec!["app-eddsa".to_owned(), "app-rs256".to_owned()];
        let title = title("load", "id-token=80,saml=20", 2, &apps);
        assert_eq!(
            title,
            "load: mix id-token=80,saml=20, 2 tenant(s), apps app-eddsa,app-rs256"
        );
    }
}
