//! Pictures: the demo's three square panels (data, 4-step samples, learned density) in one PNG,
//! and grids of images (generated samples of an image model).

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

/// A 2-D model's log-density `−E` on an `n × n` grid of `view`, row by row from the bottom
/// (the demo's density panel).
pub fn log_density_grid(model: &ddaebm::Model, view: View, n: u32) -> Result<Vec<f32>> {
    let grid: Vec<f32> = (0..n)
        .flat_map(|j| (0..n).flat_map(move |i| [view.coordinate(i, n), view.coordinate(j, n)]))
        .collect();
    Ok(model
        .energy(&grid, (n * n) as usize)?
        .into_iter()
        .map(|e| -e)
        .collect())
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

/// Writes the demo figure: the data, then every sample set in `samples` (one scatter panel
/// each), then the density panel `exp(f)` on an `n × n` grid over `view` (normalised by its
/// maximum), side by side.
pub fn write_demo_png(
    path: impl AsRef<Path>,
    data: &[f32],
    samples: &[&[f32]],
    log_density: &[f32],
    n: u32,
    view: View,
) -> Result<()> {
    let panels = 2 + samples.len() as u32;
    let width = panels * PANEL + (panels - 1) * GAP;
    let mut img = RgbImage::from_pixel(width, PANEL, Rgb([255, 255, 255]));
    scatter(&mut img, 0, data, view, Rgb([31, 119, 180]));
    for (i, s) in samples.iter().enumerate() {
        scatter(
            &mut img,
            (i as u32 + 1) * (PANEL + GAP),
            s,
            view,
            Rgb([214, 39, 40]),
        );
    }
    // Density panel: exp(f) normalised by its maximum.
    let max = log_density
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let x0 = (panels - 1) * (PANEL + GAP);
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

/// Gap between grid cells, in image pixels before scaling.
const GRID_GAP: u32 = 1;

/// Writes `images` (rows of `C·H·W` values, channel-major, raw pixel scale) as a PNG grid with
/// `columns` images per row, each pixel drawn as a `scale × scale` block. Values map from
/// `pixel_range` to 0–255 (clamped); one channel is drawn grey, three as RGB.
pub fn write_image_grid(
    path: impl AsRef<Path>,
    images: &[f32],
    shape: [usize; 3],
    pixel_range: [f32; 2],
    columns: usize,
    scale: u32,
) -> Result<()> {
    let [c, h, w] = shape;
    let per = c * h * w;
    if !(c == 1 || c == 3) || per == 0 || images.is_empty() || images.len() % per != 0 {
        anyhow::bail!(
            "cannot draw {} values as {c}×{h}×{w} images (1 or 3 channels)",
            images.len()
        );
    }
    let n = images.len() / per;
    let columns = columns.clamp(1, n);
    let rows = n.div_ceil(columns);
    let (cell_w, cell_h) = (w as u32 * scale + GRID_GAP, h as u32 * scale + GRID_GAP);
    let mut img = RgbImage::from_pixel(
        columns as u32 * cell_w + GRID_GAP,
        rows as u32 * cell_h + GRID_GAP,
        Rgb([255, 255, 255]),
    );
    let [lo, hi] = pixel_range;
    let byte = |v: f32| ((v - lo) / (hi - lo) * 255.0).round().clamp(0.0, 255.0) as u8;
    for (i, values) in images.chunks_exact(per).enumerate() {
        let (x0, y0) = (
            (i % columns) as u32 * cell_w + GRID_GAP,
            (i / columns) as u32 * cell_h + GRID_GAP,
        );
        for y in 0..h {
            for x in 0..w {
                let at = |ch: usize| byte(values[ch * h * w + y * w + x]);
                let px = if c == 1 {
                    Rgb([at(0); 3])
                } else {
                    Rgb([at(0), at(1), at(2)])
                };
                for dy in 0..scale {
                    for dx in 0..scale {
                        img.put_pixel(x0 + x as u32 * scale + dx, y0 + y as u32 * scale + dy, px);
                    }
                }
            }
        }
    }
    img.save(path.as_ref())
        .with_context(|| format!("cannot write {}", path.as_ref().display()))
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
        write_demo_png(&path, &[0.0, 0.0], &[&[0.5, 0.5]], &density, n, view).unwrap();
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

    #[test]
    fn image_grid_places_each_image_in_its_cell() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("grid.png");
        // Three 2×2 grey images: black, white, and a left-white/right-black one.
        let images = [
            0.0, 0.0, 0.0, 0.0, 16.0, 16.0, 16.0, 16.0, 16.0, 0.0, 16.0, 0.0,
        ];
        write_image_grid(&p, &images, [1, 2, 2], [0.0, 16.0], 2, 3).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        // 2 columns × (2·3 + 1) + 1 wide, 2 rows × 7 + 1 high.
        assert_eq!(img.dimensions(), (15, 15));
        assert_eq!(img.get_pixel(1, 1), &Rgb([0, 0, 0]));
        assert_eq!(img.get_pixel(8 + 5, 1 + 5), &Rgb([255, 255, 255]));
        assert_eq!(img.get_pixel(1, 8), &Rgb([255, 255, 255]));
        assert_eq!(img.get_pixel(1 + 3, 8), &Rgb([0, 0, 0]));
        assert!(write_image_grid(&p, &images, [2, 2, 2], [0.0, 1.0], 2, 1).is_err());
    }
}
