//! `throughput.svg`: the throughput chart (plotters, SVG backend only).

use std::path::Path;

use crate::sampling::Sample;

/// `path`: the per-second confirmations and their 10-s moving average over time, with the single-token
/// ceiling as a horizontal line when there is one. SVG, text as `<text>` (no font files needed).
pub(crate) fn write_chart(
    path: &Path,
    title: &str,
    samples: &[Sample],
    ceiling: Option<f64>,
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let x_max = samples.last().map_or(0.0, |s| s.t_s).max(1.0);
    let y_max = samples
        .iter()
        .flat_map(|s| [s.per_s, s.avg10_per_s])
        .chain(ceiling)
        .fold(1.0, f64::max)
        * 1.3; // headroom for the legend
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("transfers confirmed / s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let per_second = BLUE.mix(0.45);
    chart
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.t_s, s.per_s)),
            per_second,
        ))?
        .label("per second")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], per_second));
    let average = RED.stroke_width(2);
    chart
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.t_s, s.avg10_per_s)),
            average,
        ))?
        .label("10-s moving average")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], average));
    if let Some(c) = ceiling {
        let line = BLACK.stroke_width(1);
        chart
            .draw_series(LineSeries::new([(0.0, c), (x_max, c)], line))?
            .label(format!("single-token ceiling {c:.0}/s"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], line));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
