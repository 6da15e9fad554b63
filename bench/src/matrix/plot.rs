//! The PNG plots of a matrix run (plotters, bitmap backend, text drawn with ab_glyph from a
//! TrueType file read at run time: no fontconfig or freetype needed to build).
//!
//! - `throughput.png`: per scenario, shardnet's and the kernel's median on each path, with
//!   the min-max spread of the repetitions as a line on each bar;
//! - `latency_cdf.png`: per path, the latency distribution of rr (64 and 1 connections) of the
//!   median repetition of each stack;
//! - `churn.png`: connections/s and TIME_WAIT entries, second by second, of every churn run.

use super::results::{Results, Run};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;

/// Where the font comes from (Debian's `fonts-dejavu-core`).
pub const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const SHARDNET: RGBColor = RGBColor(31, 119, 180);
const KERNEL: RGBColor = RGBColor(214, 39, 40);
const PALETTE: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Registers the font plotters draws text with; an error says which files were tried.
pub fn load_font() -> Result<(), String> {
    let bytes = FONT_PATHS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| {
            format!(
                "no TrueType font for the plots (tried {}; apt-get install fonts-dejavu-core)",
                FONT_PATHS.join(", ")
            )
        })?;
    // plotters keeps the font for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| "the font file is not a TrueType font".to_string())
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

fn short_path(label: &str) -> String {
    label.split(':').next().unwrap_or(label).to_string()
}

/// `throughput.png`.
pub fn throughput(r: &Results, file: &Path) -> Result<(), String> {
    let scenarios: Vec<(String, String, String)> = r
        .groups
        .first()
        .map(|g| {
            g.rows
                .iter()
                .map(|row| (row.scenario.clone(), row.label.clone(), row.unit.clone()))
                .collect()
        })
        .unwrap_or_default();
    if scenarios.is_empty() {
        return Ok(());
    }
    let root = BitMapBackend::new(file, (1400, 300 * scenarios.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((scenarios.len(), 1));
    let n = r.groups.len();
    for ((id, label, unit), area) in scenarios.iter().zip(panels.iter()) {
        let bars: Vec<(usize, bool, f64, f64, f64)> = r
            .groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| {
                let row = g.rows.iter().find(|x| &x.scenario == id);
                [
                    (true, row.and_then(|x| x.shardnet.value)),
                    (false, row.and_then(|x| x.kernel.value)),
                ]
                .into_iter()
                .filter_map(move |(sn, v)| v.map(|v| (i, sn, v.median, v.min, v.max)))
            })
            .collect();
        let top = bars.iter().map(|b| b.4).fold(0.0f64, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{label} ({unit}); blue shardnet, red kernel"),
                ("sans-serif", 18),
            )
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..n as f64, 0.0..top)
            .map_err(err)?;
        let names: Vec<String> = r.groups.iter().map(|g| short_path(&g.label)).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(2 * n + 1)
            .x_label_formatter(&|v| {
                let i = v.floor();
                if (v - i - 0.5).abs() < 0.05 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| super::table::num(*v))
            .draw()
            .map_err(err)?;
        for (i, sn, median, min, max) in bars {
            let x0 = i as f64 + if sn { 0.1 } else { 0.52 };
            let x1 = x0 + 0.38;
            let color = if sn { SHARDNET } else { KERNEL };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x1, median)],
                    color.filled(),
                )))
                .map_err(err)?;
            let xm = (x0 + x1) / 2.0;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(xm, min), (xm, max)],
                    BLACK.stroke_width(2),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    super::table::num(median),
                    (x0, median + top * 0.02),
                    ("sans-serif", 13),
                )))
                .map_err(err)?;
        }
    }
    root.present().map_err(err)
}

/// One line of a CDF panel: label, colour, dashed, (microseconds, quantile) points.
type CdfLine = (String, RGBColor, bool, Vec<(f64, f64)>);

/// `latency_cdf.png`.
pub fn latency_cdf(r: &Results, file: &Path) -> Result<(), String> {
    if r.groups.is_empty() {
        return Ok(());
    }
    let root = BitMapBackend::new(file, (1400, 420 * r.groups.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((r.groups.len(), 1));
    for (g, area) in r.groups.iter().zip(panels.iter()) {
        let mut lines: Vec<CdfLine> = Vec::new();
        for (scenario, dashed) in [("rr64", false), ("rr1", true)] {
            let Some(row) = g.rows.iter().find(|x| x.scenario == scenario) else {
                continue;
            };
            for (side, name, color) in [
                (&row.shardnet, "shardnet", SHARDNET),
                (&row.kernel, "kernel", KERNEL),
            ] {
                if let Some(m) = side.median_run() {
                    let pts: Vec<(f64, f64)> =
                        m.cdf.iter().map(|&(q, us)| (us.max(0.1), q)).collect();
                    if !pts.is_empty() {
                        lines.push((format!("{name} {scenario}"), color, dashed, pts));
                    }
                }
            }
        }
        let (lo, hi) = lines
            .iter()
            .flat_map(|l| l.3.iter().map(|p| p.0))
            .fold((f64::MAX, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let (lo, hi) = if lines.is_empty() {
            (1.0, 10.0)
        } else {
            (lo * 0.8, hi * 1.25)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{}: latency CDF, median repetition (solid rr 64 conns, dashed rr 1 conn)",
                    short_path(&g.label)
                ),
                ("sans-serif", 18),
            )
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("latency (us, log scale)")
            .y_desc("fraction of responses")
            .draw()
            .map_err(err)?;
        for (name, color, dashed, pts) in lines {
            let style = if dashed {
                color.mix(0.5).stroke_width(2)
            } else {
                color.stroke_width(3)
            };
            chart
                .draw_series(LineSeries::new(pts, style))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// `churn.png`.
pub fn churn(r: &Results, file: &Path) -> Result<(), String> {
    let runs: Vec<(&str, &super::measurement::Measurement)> = r
        .churn
        .iter()
        .filter_map(|c| match &c.run {
            Run::Measured(m) => Some((c.label.as_str(), m.as_ref())),
            Run::Failed(_) => None,
        })
        .collect();
    if runs.is_empty() {
        return Ok(());
    }
    let root = BitMapBackend::new(file, (1400, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((2, 1));
    let secs = runs
        .iter()
        .map(|(_, m)| {
            m.connects_per_second
                .len()
                .max(m.time_wait_per_second.len())
        })
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    for (k, area) in panels.iter().enumerate() {
        let series: Vec<(&str, Vec<(f64, f64)>)> = runs
            .iter()
            .map(|(label, m)| {
                let v = if k == 0 {
                    &m.connects_per_second
                } else {
                    &m.time_wait_per_second
                };
                (
                    *label,
                    v.iter()
                        .enumerate()
                        .map(|(i, &x)| (i as f64, x as f64))
                        .collect(),
                )
            })
            .collect();
        let top = series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.1))
            .fold(1.0f64, f64::max)
            * 1.1;
        let title = if k == 0 {
            "client-closed crr: connections/s, second by second"
        } else {
            "TIME_WAIT entries on the client side, second by second"
        };
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..secs, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_label_formatter(&|v| super::table::num(*v))
            .draw()
            .map_err(err)?;
        for (i, (label, pts)) in series.into_iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(err)?
                .label(label.to_string())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}
