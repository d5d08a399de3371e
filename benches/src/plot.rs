//! What the cost-curve binaries (`curves`, `bulk_curves`) share: where their results and plots
//! live, the loop over the backends' result files, and how a series and its legend are drawn.

use std::path::{Path, PathBuf};

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

/// What drawing a plot returns.
pub type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// `benches/results`: the CSV files the binaries write and plot from.
pub fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

/// `benches/plots`: the SVG files.
pub fn plots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plots")
}

/// Calls `plot` for each backend whose `benches/results/<prefix>-<backend>.csv` exists, naming the
/// command that makes a missing one (`<bin> run`); an error when none exists.
///
/// # Errors
///
/// When the plots folder cannot be created, a plot fails, or there are no results at all.
pub fn each_backend(
    prefix: &str,
    bin: &str,
    mut plot: impl FnMut(&str, &Path) -> PlotResult,
) -> PlotResult {
    std::fs::create_dir_all(plots_dir())?;
    let mut any = false;
    for backend in ["sqlite", "postgres", "mysql"] {
        let path = results_dir().join(format!("{prefix}-{backend}.csv"));
        if !path.exists() {
            eprintln!("no {}; run `{bin} run` for {backend} first", path.display());
            continue;
        }
        plot(backend, &path)?;
        any = true;
    }
    if !any {
        return Err("no results to plot".into());
    }
    Ok(())
}

/// A solid line through `points` with a dot on each, named `label` in the legend.
///
/// # Errors
///
/// When drawing fails.
pub fn line_with_dots<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    points: &[(f64, f64)],
    color: RGBColor,
    label: &str,
) -> PlotResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate<From = (f64, f64)>,
{
    chart
        .draw_series(LineSeries::new(points.to_vec(), color.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    Ok(())
}

/// The legend, boxed, at `position`.
///
/// # Errors
///
/// When drawing fails.
pub fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> PlotResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
