//! What several subcommands share: progress display, opening models and rows, Ctrl-C handling
//! and PNG grids of image rows.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ddaebm::{parse_device, ImageConfig, Model};
use ddaebm_train::data::{load_matrix, Matrix};
use ddaebm_train::plot::write_image_grid;
use ddaebm_train::trainer::StepStats;
use indicatif::{ProgressBar, ProgressStyle};

/// Progress display: a bar with live losses on a terminal, plain lines otherwise.
pub fn progress(total: usize) -> impl FnMut(usize, &StepStats) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .expect("valid template"),
        );
        bar
    });
    let every = (total / 20).max(1);
    let start = Instant::now();
    move |step, s| {
        let mut msg = format!(
            "L_E {:+.3} L_G {:+.3} R1 {:.3} f_real {:+.2} f_fake {:+.2}",
            s.loss_energy, s.loss_generator, s.r1, s.f_real, s.f_fake
        );
        // GCD's value loss (0 for the other methods and during its DDPM pre-training).
        if s.loss_value != 0.0 {
            msg.push_str(&format!(" L_V {:.3}", s.loss_value));
        }
        match &bar {
            Some(bar) => {
                bar.set_position(step as u64 + 1);
                if step % 10 == 0 {
                    bar.set_message(msg);
                }
                if step + 1 == total {
                    bar.finish_and_clear();
                }
            }
            None if (step + 1) % every == 0 || step + 1 == total => eprintln!(
                "step {}/{total} ({:.0}s) {msg}",
                step + 1,
                start.elapsed().as_secs_f64()
            ),
            None => {}
        }
    }
}

pub fn load_rows_for(model: &Model, path: &Path, key: Option<&str>) -> Result<Matrix> {
    let m = load_matrix(path, key)?;
    if m.cols != model.input_dim() {
        bail!(
            "{}: rows have {} features but the model expects {}",
            path.display(),
            m.cols,
            model.input_dim()
        );
    }
    Ok(m)
}

/// The model and rows a scoring subcommand reads (`score`, `drift`, `explain`).
#[derive(clap::Args)]
pub struct ModelRows {
    #[arg(long)]
    pub model: PathBuf,
    /// The rows (.npy, .npz, .csv or images).
    #[arg(long)]
    pub data: PathBuf,
    /// Array name inside a .npz file.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl ModelRows {
    /// Opens the model and loads rows of its width.
    pub fn load(&self) -> Result<(Model, Matrix)> {
        let model = open_model(&self.model, &self.device)?;
        let rows = load_rows_for(&model, &self.data, self.key.as_deref())?;
        Ok((model, rows))
    }
}

pub fn open_model(path: &Path, device: &str) -> Result<Model> {
    let device = parse_device(device)?;
    Model::open(path, &device).with_context(|| path.display().to_string())
}

/// Makes the first Ctrl-C (SIGINT) or SIGTERM raise the returned flag, so that `fit` stops
/// after the current iteration and writes a checkpoint; a second one exits at once.
pub fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this iteration to write a checkpoint (again to quit now)");
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(flag)
}

/// Writes image rows (raw pixel scale) as a PNG grid, each pixel 4×4 (8×8 for images up to 16
/// pixels a side).
pub fn write_sample_grid(
    path: &Path,
    rows: &[f32],
    image: &ImageConfig,
    columns: usize,
) -> Result<()> {
    let scale = if image.height.max(image.width) <= 16 {
        8
    } else {
        4
    };
    write_image_grid(
        path,
        rows,
        [image.channels, image.height, image.width],
        image.pixel_range,
        columns,
        scale,
    )
}
