//! The bench's PNG plots, drawn with `plotters` into a pixel buffer (no
//! fontconfig, no image crate): text uses DejaVu Sans read at run time, and
//! [`write_png`] encodes the buffer (stored deflate blocks: larger files,
//! no compression code).

use anyhow::{Context, Result};
use plotters::prelude::*;
use std::path::Path;

const W: u32 = 1000;
const H: u32 = 600;

/// Registers DejaVu Sans as "sans-serif" once; false if no font is found
/// (`apt-get install fonts-dejavu-core`), in which case no plot is drawn.
pub fn init_font() -> bool {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| {
        for path in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
        ] {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// Horizontal-less bar chart: per case, its median and its baseline's
/// median side by side (ns/packet).
pub fn bars_with_baseline(
    path: &Path,
    title: &str,
    unit: &str,
    rows: &[(String, f64, f64)],
) -> Result<()> {
    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let max = rows
            .iter()
            .flat_map(|r| [r.1, r.2])
            .filter(|v| v.is_finite())
            .fold(1.0f64, f64::max)
            * 1.1;
        let n = rows.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(10)
            .x_label_area_size(170)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..n as f64, 0.0..max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                rows.get(i).map(|r| r.0.clone()).unwrap_or_default()
            })
            .x_label_style(
                ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )
            .y_desc(unit)
            .draw()?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let x = i as f64;
                Rectangle::new([(x + 0.1, 0.0), (x + 0.48, r.1)], BLUE.filled())
            }))?
            .label("case (median)")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BLUE.filled()));
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let x = i as f64;
                Rectangle::new(
                    [(x + 0.52, 0.0), (x + 0.9, r.2)],
                    RGBColor(200, 120, 0).filled(),
                )
            }))?
            .label("its baseline, same rounds (median)")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 10, y + 5)],
                    RGBColor(200, 120, 0).filled(),
                )
            });
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    write_png(path, W, H, &buf)
}

/// Per-round lines: two series over the round number.
pub fn rounds_lines(
    path: &Path,
    title: &str,
    unit: &str,
    a: (&str, &[f64]),
    b: (&str, &[f64]),
) -> Result<()> {
    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let max = a.1.iter().chain(b.1).copied().fold(1.0f64, f64::max) * 1.15;
        let n = a.1.len().max(b.1.len()).max(2);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d(1usize..n, 0.0..max)?;
        chart.configure_mesh().x_desc("round").y_desc(unit).draw()?;
        for (series, color) in [(a, BLUE), (b, RGBColor(200, 120, 0))] {
            chart
                .draw_series(LineSeries::new(
                    series.1.iter().enumerate().map(|(i, v)| (i + 1, *v)),
                    color.stroke_width(2),
                ))?
                .label(series.0)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    write_png(path, W, H, &buf)
}

/// Histograms of several series (ms), in bins of `bin` ms, side by side.
pub fn histograms(path: &Path, title: &str, series: &[(&str, &[f64])], bin: f64) -> Result<()> {
    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let max_x = series
            .iter()
            .flat_map(|s| s.1.iter())
            .copied()
            .fold(bin, f64::max)
            + bin;
        let bins = (max_x / bin).ceil() as usize + 1;
        let counts: Vec<Vec<u32>> = series
            .iter()
            .map(|s| {
                let mut c = vec![0u32; bins];
                for v in s.1 {
                    c[((v / bin).floor() as usize).min(bins - 1)] += 1;
                }
                c
            })
            .collect();
        let max_y = counts.iter().flatten().copied().max().unwrap_or(1) + 1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..bins as f64 * bin, 0u32..max_y)?;
        chart.configure_mesh().x_desc("ms").y_desc("runs").draw()?;
        let colors = [BLUE, RGBColor(200, 120, 0), RGBColor(0, 150, 0), RED];
        let k = series.len().max(1) as f64;
        for (j, (s, c)) in series.iter().zip(&counts).enumerate() {
            let color = colors[j % colors.len()];
            chart
                .draw_series(c.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| {
                    let x0 = i as f64 * bin + j as f64 * bin / k;
                    Rectangle::new([(x0, 0), (x0 + bin / k, *n)], color.filled())
                }))?
                .label(s.0)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    write_png(path, W, H, &buf)
}

/// An 8-bit RGB PNG of `rgb` (row-major, `w` x `h`), zlib with stored
/// blocks.
pub fn write_png(path: &Path, w: u32, h: u32, rgb: &[u8]) -> Result<()> {
    let mut raw = Vec::with_capacity(((w * 3 + 1) * h) as usize);
    for row in rgb.chunks((w * 3) as usize) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let mut chunks = raw.chunks(65_535).peekable();
    while let Some(c) = chunks.next() {
        z.push(u8::from(chunks.peek().is_none()));
        z.extend_from_slice(&(c.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(c.len() as u16)).to_le_bytes());
        z.extend_from_slice(c);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_checksums() {
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }
}
