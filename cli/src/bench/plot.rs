//! `--plot PATH`: ops/s against threads, one chart per workload, one line
//! per implementation (fio rows included). The thread counts run measured
//! are evenly spaced along x; ops/s is logarithmic (the implementations
//! differ by orders of magnitude). PNG, or SVG when the path ends in
//! `.svg`. Text uses a font compiled into the binary (no system fonts).

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::RunResult;
use crate::bail;
use crate::error::{Error, Result};

/// One colour per implementation, the same in every chart.
fn colour(imp: &str) -> RGBColor {
    match imp {
        "pagepool" => RGBColor(214, 39, 40),
        "pagepool-shared" => RGBColor(255, 127, 14),
        "raw" => RGBColor(0, 0, 0),
        "dashmap-rwlock" => RGBColor(31, 119, 180),
        "mutex-lru" => RGBColor(148, 103, 189),
        "mmap" => RGBColor(44, 160, 44),
        "pread" => RGBColor(140, 86, 75),
        "mmap-capped" => RGBColor(23, 190, 207),
        "pread-capped" => RGBColor(227, 119, 194),
        "fio-psync" => RGBColor(127, 127, 127),
        "fio-uring" => RGBColor(188, 189, 34),
        _ => RGBColor(23, 190, 207),
    }
}

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut ok = true;
    ONCE.call_once(|| {
        ok = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .is_ok();
    });
    if !ok {
        bail!("the plot's font failed to load");
    }
    Ok(())
}

/// Draws `results` into `path` (`title` above the charts).
pub fn draw(path: &Path, title: &str, results: &[RunResult]) -> Result<()> {
    register_font()?;
    let workloads = unique(results.iter().map(|r| r.workload.as_str()));
    if workloads.is_empty() {
        bail!("nothing to plot");
    }
    let columns = workloads.len().min(2);
    let rows = workloads.len().div_ceil(columns);
    let size = (720 * columns as u32, 520 * rows as u32 + 40);
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    let drawn = if svg {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw_on(root, title, &workloads, (rows, columns), results)
    } else {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw_on(root, title, &workloads, (rows, columns), results)
    };
    drawn.map_err(|e| Error::msg(format!("drawing {}: {e}", path.display())))
}

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    workloads: &[&str],
    grid: (usize, usize),
    results: &[RunResult],
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 18))?;
    for (area, &workload) in root.split_evenly(grid).iter().zip(workloads) {
        chart(area, workload, results)?;
    }
    root.present()?;
    Ok(())
}

fn chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    workload: &str,
    results: &[RunResult],
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    let rows: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.workload == workload && r.ops_per_sec > 0.0)
        .collect();
    let mut threads: Vec<usize> = rows.iter().map(|r| r.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let x_of = |t: usize| threads.iter().position(|&u| u == t).unwrap_or(0) as f64;
    let last = threads.len().saturating_sub(1).max(1) as f64;
    let (low, high) = rows.iter().fold((f64::MAX, 0f64), |(lo, hi), r| {
        (lo.min(r.ops_per_sec), hi.max(r.ops_per_sec))
    });
    // Headroom above the lines for the legend (ops/s is logarithmic).
    let (low, high) = if high > 0.0 {
        (low / 2.0, high * 2.0 * (high / low).powf(0.6).max(4.0))
    } else {
        (1.0, 10.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(workload, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.25f64..last + 0.25, (low..high).log_scale())?;
    let x_label = |x: &f64| {
        let index = x.round();
        if (x - index).abs() < 1e-6 && index >= 0.0 {
            threads
                .get(index as usize)
                .map_or(String::new(), |t| t.to_string())
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc("threads")
        .y_desc("ops/s (log)")
        .x_labels(4 * threads.len() + 1)
        .x_label_formatter(&x_label)
        .y_label_formatter(&|y| si(*y))
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .disable_x_mesh()
        .draw()?;
    for imp in unique(rows.iter().map(|r| r.imp.as_str())) {
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.imp == imp)
            .map(|r| (x_of(r.threads), r.ops_per_sec))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let style = colour(imp).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(imp)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 3, colour(imp).filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}

/// `12345678` as `12.3M`.
fn si(value: f64) -> String {
    match value {
        v if v >= 1e9 => format!("{:.3}G", v / 1e9),
        v if v >= 1e6 => format!("{:.3}M", v / 1e6),
        v if v >= 1e3 => format!("{:.3}k", v / 1e3),
        v => format!("{v:.0}"),
    }
    .replace(".000", "")
}

fn unique<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for name in names {
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_short() {
        assert_eq!(si(12_000_000.0), "12M");
        assert_eq!(si(1500.0), "1.500k");
        assert_eq!(si(7.0), "7");
    }
}
