//! Line plots of a soak's samples as SVG: one file per figure, one line
//! per process, the warm-up shaded.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::sample::Sample;

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;
const COLOURS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/// One line: its label and (t, value) points.
pub(crate) type Series = (String, Vec<(f64, f64)>);

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
fn nice(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * p)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// An SVG of `series` against seconds.
pub(crate) fn svg(title: &str, unit: &str, series: &[Series], warmup_s: f64) -> String {
    let t_max = series.iter().flat_map(|s| s.1.iter().map(|p| p.0)).fold(1.0, f64::max);
    let y_max = nice(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(0.0, f64::max) * 1.1);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |t: f64| LEFT + t / t_max * pw;
    let y = |v: f64| TOP + ph - v / y_max * ph;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"16\" font-size=\"13\">{}</text>\n",
        esc(title)
    );
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{ph}\" fill=\"#eee\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#888\">warm-up</text>",
        x(warmup_s.min(t_max)) - LEFT,
        LEFT + 4.0,
        TOP + 12.0
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ccc\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + pw,
            y(v),
            y(v),
            LEFT - 4.0,
            y(v) + 4.0,
            if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        );
    }
    for i in 0..=5 {
        let t = t_max * f64::from(i) / 5.0;
        let label = if t_max >= 600.0 {
            format!("{:.0} min", t / 60.0)
        } else {
            format!("{t:.0} s")
        };
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            x(t),
            TOP + ph + 16.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text>",
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(unit)
    );
    for (i, (label, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let d: Vec<String> = pts.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{}</text>",
            d.join(" "),
            LEFT + pw + 8.0,
            TOP + 12.0 + 14.0 * i as f64,
            esc(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn per_process(samples: &[Sample], f: impl Fn(&super::sample::ProcSample) -> f64) -> Vec<Series> {
    let names: Vec<&str> = samples
        .first()
        .map(|s| s.procs.keys().copied().collect())
        .unwrap_or_default();
    names
        .iter()
        .map(|n| {
            (
                n.trim_start_matches("soak:").to_owned(),
                samples
                    .iter()
                    .filter_map(|s| s.procs.get(n).map(|p| (s.t, f(p))))
                    .collect(),
            )
        })
        .collect()
}

/// rss.svg, fds.svg, threads.svg, cpu.svg and latency.svg into `out`.
pub(crate) fn write_all(out: &Path, samples: &[Sample], warmup: Duration) -> anyhow::Result<()> {
    let w = warmup.as_secs_f64();
    let figs = [
        (
            "rss.svg",
            svg(
                "Resident memory per process",
                "MiB",
                &per_process(samples, |p| p.rss as f64 / f64::from(1 << 20)),
                w,
            ),
        ),
        (
            "fds.svg",
            svg(
                "Open descriptors per process",
                "fds",
                &per_process(samples, |p| p.fds as f64),
                w,
            ),
        ),
        (
            "threads.svg",
            svg(
                "Threads per process",
                "threads",
                &per_process(samples, |p| p.threads as f64),
                w,
            ),
        ),
        (
            "cpu.svg",
            svg(
                "CPU per process (100 = one core)",
                "%",
                &per_process(samples, |p| p.cpu_pct),
                w,
            ),
        ),
        (
            "latency.svg",
            svg(
                "Subscribers' capture-to-arrival latency",
                "ms",
                &[
                    ("p50".to_owned(), samples.iter().map(|s| (s.t, s.p50_ms)).collect()),
                    ("p99".to_owned(), samples.iter().map(|s| (s.t, s.p99_ms)).collect()),
                ],
                w,
            ),
        ),
    ];
    for (name, body) in figs {
        std::fs::write(out.join(name), body)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.3), 10.0);
        assert_eq!(nice(13.0), 20.0);
        assert_eq!(nice(41.0), 50.0);
        assert_eq!(nice(0.3), 0.5);
    }

    #[test]
    fn a_plot_has_a_line_per_series_inside_the_frame() {
        let s = svg(
            "t",
            "ms",
            &[
                ("a".into(), vec![(0.0, 1.0), (10.0, 3.0)]),
                ("b<".into(), vec![(0.0, 2.0), (10.0, 2.0)]),
            ],
            2.0,
        );
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("b&lt;"));
        for pt in s.split("points=\"").skip(1).map(|r| &r[..r.find('"').unwrap()]) {
            for xy in pt.split(' ') {
                let (x, y) = xy.split_once(',').unwrap();
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!(
                    (LEFT..=W - RIGHT).contains(&x) && (TOP..=H - BOTTOM).contains(&y),
                    "{xy}"
                );
            }
        }
    }
}
