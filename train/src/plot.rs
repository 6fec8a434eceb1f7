//! The demo picture: three square panels (data, 4-step samples, learned density) in one PNG.

use std::path::Path;

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};

const PANEL: u32 = 360;
const GAP: u32 = 12;

/// Square region of the plane shown in every panel.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub min: f32,
    pub max: f32,
}

impl View {
    fn to_pixel(self, v: f32) -> Option<u32> {
        let u = (v - self.min) / (self.max - self.min);
        (0.0..1.0).contains(&u).then_some((u * PANEL as f32) as u32)
    }

    /// Centre of pixel `i` along one axis.
    pub fn coordinate(self, i: u32, n: u32) -> f32 {
        self.min + (i as f32 + 0.5) / n as f32 * (self.max - self.min)
    }
}

/// A perceptually ordered dark-blue → teal → yellow ramp for `t ∈ [0, 1]`.
fn ramp(t: f32) -> Rgb<u8> {
    let stops = [
        (0.0, [68.0, 1.0, 84.0]),
        (0.33, [49.0, 104.0, 142.0]),
        (0.66, [53.0, 183.0, 121.0]),
        (1.0, [253.0, 231.0, 37.0]),
    ];
    let t = t.clamp(0.0, 1.0);
    let i = stops
        .iter()
        .rposition(|s| s.0 <= t)
        .unwrap_or(0)
        .min(stops.len() - 2);
    let (a, b) = (stops[i], stops[i + 1]);
    let w = (t - a.0) / (b.0 - a.0);
    let c = |k: usize| (a.1[k] + w * (b.1[k] - a.1[k])) as u8;
    Rgb([c(0), c(1), c(2)])
}

fn scatter(img: &mut RgbImage, x0: u32, points: &[f32], view: View, colour: Rgb<u8>) {
    for p in points.chunks_exact(2) {
        let (Some(px), Some(py)) = (view.to_pixel(p[0]), view.to_pixel(p[1])) else {
            continue;
        };
        let py = PANEL - 1 - py;
        for dx in 0..2 {
            for dy in 0..2 {
                let (x, y) = ((px + dx).min(PANEL - 1), (py + dy).min(PANEL - 1));
                img.put_pixel(x0 + x, y, colour);
            }
        }
    }
}

/// Draws `data` and `samples` (row-major 2-D points) as scatter plots and `log_density`
/// (`n × n` values, row 0 at the bottom) as a heat map, side by side.
pub fn write_demo_png(
    path: impl AsRef<Path>,
    data: &[f32],
    samples: &[f32],
    log_density: &[f32],
    n: u32,
    view: View,
) -> Result<()> {
    let width = 3 * PANEL + 2 * GAP;
    let mut img = RgbImage::from_pixel(width, PANEL, Rgb([255, 255, 255]));
    scatter(&mut img, 0, data, view, Rgb([31, 119, 180]));
    scatter(&mut img, PANEL + GAP, samples, view, Rgb([214, 39, 40]));
    // Density panel: exp(f) normalised by its maximum.
    let max = log_density
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let x0 = 2 * (PANEL + GAP);
    for py in 0..PANEL {
        for px in 0..PANEL {
            let (i, j) = (px * n / PANEL, (PANEL - 1 - py) * n / PANEL);
            let v = (log_density[(j * n + i) as usize] - max).exp();
            img.put_pixel(x0 + px, py, ramp(v));
        }
    }
    let path = path.as_ref();
    img.save(path)
        .with_context(|| format!("{}: cannot write PNG", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_three_panels_with_points_where_the_data_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        let view = View {
            min: -1.0,
            max: 1.0,
        };
        // One data point at the origin, one sample at (0.5, 0.5), a density peaked top-right.
        let n = 10u32;
        let density: Vec<f32> = (0..n * n)
            .map(|i| if i == n * n - 1 { 0.0 } else { -10.0 })
            .collect();
        write_demo_png(&path, &[0.0, 0.0], &[0.5, 0.5], &density, n, view).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (3 * PANEL + 2 * GAP, PANEL));
        let centre = PANEL / 2;
        assert_eq!(img.get_pixel(centre, centre - 1), &Rgb([31, 119, 180]));
        assert_eq!(img.get_pixel(10, 10), &Rgb([255, 255, 255]));
        let (sx, sy) = (PANEL + GAP + 3 * PANEL / 4, PANEL / 4 - 1);
        assert_eq!(img.get_pixel(sx, sy), &Rgb([214, 39, 40]));
        // Density: brightest (yellow) in the top-right corner, darkest elsewhere.
        let x0 = 2 * (PANEL + GAP);
        assert_eq!(img.get_pixel(x0 + PANEL - 1, 0), &ramp(1.0));
        assert_eq!(img.get_pixel(x0, PANEL - 1), &ramp((-10f32).exp()));
    }
}
