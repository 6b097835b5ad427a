//! Small SVG figures for fieldflow (via plotters: pure Rust, no system fonts
//! needed).
//!
//! One generic [`Figure`] draws named [`Series`] — polylines, or points with
//! symmetric error bars — with axes, a legend and an optional labelled
//! vertical marker; [`histogram`] turns values into a density step line.
//! There are no log axes: to show a quantity on a log scale, plot its log10
//! and say so in the axis label.
//!
//! ```no_run
//! use fieldflow_plot::{Figure, Series};
//! let mut f = Figure::new("τ_int vs L", "L", "log10 τ_int");
//! f.series.push(Series::points("HMC", [(6.0, 0.3, 0.05), (8.0, 0.5, 0.04)]));
//! f.series.push(Series::line("fit", [(6.0, 0.3), (8.0, 0.5)]));
//! f.save(std::path::Path::new("tau.svg")).unwrap();
//! ```

use anyhow::Result;
use plotters::prelude::*;
use std::path::Path;

/// Colours of successive series.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// What a series is drawn as.
pub enum Style {
    /// A polyline.
    Line,
    /// Points with symmetric error bars (third tuple entry).
    Points,
}

/// One named series of (x, y, error) triples.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Data (error ignored for lines).
    pub data: Vec<(f64, f64, f64)>,
    /// How to draw it.
    pub style: Style,
}

impl Series {
    /// A line through (x, y).
    pub fn line(label: impl Into<String>, xy: impl IntoIterator<Item = (f64, f64)>) -> Self {
        Series {
            label: label.into(),
            data: xy.into_iter().map(|(x, y)| (x, y, 0.0)).collect(),
            style: Style::Line,
        }
    }
    /// Points (x, y ± e).
    pub fn points(label: impl Into<String>, xye: impl IntoIterator<Item = (f64, f64, f64)>) -> Self {
        Series {
            label: label.into(),
            data: xye.into_iter().collect(),
            style: Style::Points,
        }
    }
}

/// A 2-D figure with axes, legend and an optional vertical marker.
pub struct Figure {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// The series.
    pub series: Vec<Series>,
    /// A labelled vertical line (e.g. the chosen window W).
    pub marker: Option<(f64, String)>,
    /// A fixed y range (None: fit the data), e.g. head room for the legend.
    pub y_range: Option<(f64, f64)>,
}

impl Figure {
    /// A figure without series.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Figure {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: vec![],
            marker: None,
            y_range: None,
        }
    }

    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.data.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y, e) in pts {
            let e = if e.is_finite() { e } else { 0.0 };
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y - e);
            y1 = y1.max(y + e);
        }
        if let Some((m, _)) = &self.marker {
            x0 = x0.min(*m);
            x1 = x1.max(*m);
        }
        if x0 > x1 {
            return ((0.0, 1.0), self.y_range.unwrap_or((0.0, 1.0)));
        }
        let pad = |a: f64, b: f64| {
            let w = if b > a { b - a } else { a.abs().max(1.0) };
            (a - 0.05 * w, b + 0.05 * w)
        };
        (pad(x0, x1), self.y_range.unwrap_or_else(|| pad(y0, y1)))
    }

    /// Draws the figure into an SVG file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let root = SVGBackend::new(path, (800, 520)).into_drawing_area();
        self.draw(&root)
            .map_err(|e| anyhow::anyhow!("{}: cannot draw figure: {e}", path.display()))?;
        root.present()
            .map_err(|e| anyhow::anyhow!("{}: cannot write figure: {e}", path.display()))?;
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let ((x0, x1), (y0, y1)) = self.ranges();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let finite: Vec<(f64, f64, f64)> = s
                .data
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            let anno = match s.style {
                Style::Line => chart
                    .draw_series(LineSeries::new(
                        finite.iter().map(|p| (p.0, p.1)),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?,
                Style::Points => {
                    chart
                        .draw_series(
                            finite
                                .iter()
                                .map(|&(x, y, e)| ErrorBar::new_vertical(x, y - e, y, y + e, color.filled(), 6)),
                        )
                        .map_err(|e| e.to_string())?;
                    chart
                        .draw_series(finite.iter().map(|&(x, y, _)| Circle::new((x, y), 3, color.filled())))
                        .map_err(|e| e.to_string())?
                }
            };
            anno.label(s.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        if let Some((m, label)) = &self.marker {
            chart
                .draw_series(LineSeries::new(vec![(*m, y0), (*m, y1)], BLACK.stroke_width(1)))
                .map_err(|e| e.to_string())?
                .label(label.as_str())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Histogram of `values` in `bins` bins as a step line (normalized density).
pub fn histogram(values: impl Iterator<Item = f64> + Clone, bins: usize) -> Vec<(f64, f64)> {
    let (lo, hi) = values
        .clone()
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let n = values.clone().count();
    if n == 0 || !(hi > lo) {
        return vec![];
    }
    let w = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in values {
        counts[(((v - lo) / w) as usize).min(bins - 1)] += 1;
    }
    let mut pts = Vec::with_capacity(2 * bins + 2);
    pts.push((lo, 0.0));
    for (i, c) in counts.iter().enumerate() {
        let d = *c as f64 / (n as f64 * w);
        pts.push((lo + i as f64 * w, d));
        pts.push((lo + (i + 1) as f64 * w, d));
    }
    pts.push((hi, 0.0));
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_a_normalized_density() {
        let pts = histogram((0..1000).map(|i| i as f64 / 1000.0), 10);
        assert_eq!(pts.len(), 22);
        let area: f64 = pts.windows(2).map(|w| (w[1].0 - w[0].0) * w[0].1.min(w[1].1)).sum();
        assert!((area - 1.0).abs() < 1e-9, "{area}");
        assert!(histogram([1.0, 1.0].into_iter(), 5).is_empty());
    }

    #[test]
    fn figure_saves_an_svg_with_its_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.svg");
        let mut f = Figure::new("title", "x", "y");
        f.series.push(Series::points(
            "pts",
            [(0.0, 1.0, 0.1), (1.0, f64::NAN, 0.0), (2.0, 3.0, f64::NAN)],
        ));
        f.series.push(Series::line("line", [(0.0, 1.0), (2.0, 3.0)]));
        f.marker = Some((1.0, "mark".into()));
        f.y_range = Some((0.0, 5.0));
        assert_eq!(f.ranges().1, (0.0, 5.0));
        f.save(&p).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        for label in ["title", "pts", "line", "mark"] {
            assert!(svg.contains(label), "{label} missing");
        }
        // An empty figure still draws (unit ranges).
        Figure::new("empty", "x", "y").save(&dir.path().join("e.svg")).unwrap();
    }
}
