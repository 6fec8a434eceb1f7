//! Reading feature matrices from `.npy`, `.npz` and `.csv` files and images from arrays or a
//! folder of PNG/JPEG files, and writing `.npy` results.
//!
//! Images become rows of `C·H·W` values in channel-major order (the layout of a C-ordered
//! `(N, C, H, W)` array), with their shape kept in [`Matrix::image`].
//!
//! Every error names the file and, for bad values, the row and column, so the CLI can print one
//! clear line.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle::{Device, Tensor};

/// A dense row-major f32 matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
    /// Set when each row is an image.
    pub image: Option<ImageLayout>,
}

/// The shape of the images a matrix's rows hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageLayout {
    /// `[C, H, W]`; a row holds `C·H·W` values, channel by channel, each row by row.
    pub shape: [usize; 3],
    /// The value range of the source format when it has one (`[0, 255]` for 8-bit pixels).
    pub range: Option<[f32; 2]>,
}

impl Matrix {
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            bail!("{} values do not make a {rows}×{cols} matrix", data.len());
        }
        Ok(Self {
            rows,
            cols,
            data,
            image: None,
        })
    }

    /// `rows` images of `shape` (`[C, H, W]`), `data` in channel-major order.
    pub fn images(
        rows: usize,
        shape: [usize; 3],
        data: Vec<f32>,
        range: Option<[f32; 2]>,
    ) -> Result<Self> {
        let mut m = Self::new(rows, shape.iter().product(), data)?;
        m.image = Some(ImageLayout { shape, range });
        Ok(m)
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut data = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Self {
            rows: indices.len(),
            cols: self.cols,
            data,
            image: self.image,
        }
    }

    /// Errors on the first NaN or ±Inf, naming its (0-based) row and column.
    pub fn check_finite(&self) -> Result<()> {
        if let Some(i) = self.data.iter().position(|v| !v.is_finite()) {
            bail!(
                "row {} column {} is {} (every value must be finite)",
                i / self.cols,
                i % self.cols,
                self.data[i]
            );
        }
        Ok(())
    }
}

/// Reads a numeric `.npy` stream into a row-major matrix: 1-D or 2-D (C or Fortran order), or
/// images, `(N, H, W)` or `(N, C, H, W)` (C order).
fn from_npy<R: std::io::Read>(npy: npyz::NpyFile<R>, what: &str) -> Result<Matrix> {
    use npyz::TypeChar::{Bool, Float, Int, Uint};
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let image = match shape[..] {
        [_, h, w] => Some([1, h, w]),
        [_, c, h, w] => Some([c, h, w]),
        _ => None,
    };
    let (rows, cols) = match shape[..] {
        [n] => (n, 1),
        [r, c] => (r, c),
        [n, ..] if shape.len() <= 4 => (n, shape[1..].iter().product()),
        _ => bail!(
            "{what} has {} dimensions, expected a 2-D (rows × features) array or images \
             (N, H, W) or (N, C, H, W)",
            shape.len()
        ),
    };
    let fortran = npy.order() == npyz::Order::Fortran;
    if fortran && image.is_some() {
        bail!("{what} is a Fortran-ordered image array; save it in C order (np.ascontiguousarray)");
    }
    let eight_bit = matches!(npy.dtype(), npyz::DType::Plain(ts) if ts.type_char() == Uint && ts.size_field() == 1);
    let npyz::DType::Plain(ts) = npy.dtype() else {
        bail!("{what} is a structured array; expected plain numbers");
    };
    let widen = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let bad = |e: std::io::Error| anyhow::anyhow!("{what}: cannot read the values: {e}");
    let values: Vec<f32> = match (ts.type_char(), ts.size_field()) {
        (Float, 4) => npy.into_vec::<f32>().map_err(bad)?,
        (Float, 8) => widen(npy.into_vec::<f64>().map_err(bad)?),
        (Int, 8) => widen(
            npy.into_vec::<i64>()
                .map_err(bad)?
                .into_iter()
                .map(|x| x as f64)
                .collect(),
        ),
        (Int, 4) => widen(
            npy.into_vec::<i32>()
                .map_err(bad)?
                .into_iter()
                .map(f64::from)
                .collect(),
        ),
        (Uint, 1) | (Bool, 1) => npy
            .into_vec::<u8>()
            .map_err(bad)?
            .into_iter()
            .map(f32::from)
            .collect(),
        _ => bail!("{what} has unsupported dtype {ts} (expected float32/float64 or integers)"),
    };
    let data = if fortran && rows > 1 && cols > 1 {
        let mut t = vec![0f32; values.len()];
        for c in 0..cols {
            for r in 0..rows {
                t[r * cols + c] = values[c * rows + r];
            }
        }
        t
    } else {
        values
    };
    match image {
        Some(shape) => Matrix::images(rows, shape, data, eight_bit.then_some([0.0, 255.0])),
        None => Matrix::new(rows, cols, data),
    }
}

/// File extensions read as images from a folder.
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Reads every PNG/JPEG file of a folder (sorted by name; other files are skipped) as one row
/// each. All must have the same size; the matrix has one channel when every file is grey and
/// three (RGB; alpha dropped) otherwise. Values are 0–255.
pub fn load_image_folder(dir: &Path) -> Result<Matrix> {
    let shown = dir.display();
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{shown}: cannot list the folder"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{shown}: no .png, .jpg or .jpeg files in the folder");
    }
    let mut decoded = Vec::with_capacity(files.len());
    for f in &files {
        let img = image::open(f).with_context(|| format!("{}: cannot decode", f.display()))?;
        decoded.push(img);
    }
    let (w, h) = (decoded[0].width() as usize, decoded[0].height() as usize);
    if let Some((f, img)) = files
        .iter()
        .zip(&decoded)
        .find(|(_, i)| (i.width() as usize, i.height() as usize) != (w, h))
    {
        bail!(
            "{}: {}×{} pixels, but {} is {w}×{h}; every image must have the same size",
            f.display(),
            img.width(),
            img.height(),
            files[0].display()
        );
    }
    let grey = decoded.iter().all(|i| !i.color().has_color());
    let channels = if grey { 1 } else { 3 };
    let mut data = Vec::with_capacity(files.len() * channels * h * w);
    for img in &decoded {
        if grey {
            data.extend(img.to_luma8().into_raw().into_iter().map(f32::from));
        } else {
            // Interleaved RGB → channel-major.
            let rgb = img.to_rgb8().into_raw();
            for c in 0..3 {
                data.extend(rgb.iter().skip(c).step_by(3).map(|&v| f32::from(v)));
            }
        }
    }
    Matrix::images(files.len(), [channels, h, w], data, Some([0.0, 255.0]))
}

/// Loads a feature matrix. `.npy`: a 2-D numeric array, or images `(N, H, W)` / `(N, C, H, W)`;
/// `.npz`: the array named `key` (default `X`); `.csv`: numeric values with an optional header
/// row; a folder: its PNG/JPEG images ([`load_image_folder`]). Rows with NaN/Inf are an error.
pub fn load_matrix(path: impl AsRef<Path>, key: Option<&str>) -> Result<Matrix> {
    let path = path.as_ref();
    let shown = path.display();
    if path.is_dir() {
        return load_image_folder(path);
    }
    if !path.is_file() {
        bail!("{shown}: no such file");
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let m = match ext.as_str() {
        "npy" => {
            let file =
                std::fs::File::open(path).with_context(|| format!("{shown}: cannot open"))?;
            let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
                .with_context(|| format!("{shown}: not a valid .npy file"))?;
            from_npy(npy, &shown.to_string())?
        }
        "npz" => {
            let key = key.unwrap_or("X");
            let mut archive = npyz::npz::NpzArchive::open(path)
                .with_context(|| format!("{shown}: not a valid .npz file"))?;
            let names: Vec<String> = archive.array_names().map(str::to_string).collect();
            let npy = archive
                .by_name(key)
                .with_context(|| format!("{shown}: array {key:?} is not a valid .npy"))?;
            let Some(npy) = npy else {
                bail!("{shown}: no array named {key:?} (arrays: {names:?}); choose one with --key");
            };
            from_npy(npy, &format!("{shown}[{key}]"))?
        }
        "csv" => load_csv(path)?,
        _ => bail!("{shown}: unsupported file type (expected .npy, .npz or .csv)"),
    };
    if m.rows == 0 || m.cols == 0 {
        bail!("{shown}: the matrix is empty ({}×{})", m.rows, m.cols);
    }
    m.check_finite().with_context(|| shown.to_string())?;
    Ok(m)
}

fn load_csv(path: &Path) -> Result<Matrix> {
    let shown = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("{shown}: cannot open"))?;
    let mut data = vec![];
    let (mut rows, mut cols) = (0usize, 0usize);
    for (line, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{shown}: malformed CSV"))?;
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        let parsed: Vec<Result<f32, _>> = record.iter().map(|f| f.parse::<f32>()).collect();
        if line == 0 && parsed.iter().any(|p| p.is_err()) {
            continue; // header row
        }
        if rows == 0 {
            cols = record.len();
        } else if record.len() != cols {
            bail!(
                "{shown}: line {} has {} fields, expected {cols}",
                line + 1,
                record.len()
            );
        }
        for (col, (p, field)) in parsed.into_iter().zip(record.iter()).enumerate() {
            let v = p.map_err(|_| {
                anyhow::anyhow!(
                    "{shown}: line {} column {}: {field:?} is not a number",
                    line + 1,
                    col + 1
                )
            })?;
            data.push(v);
        }
        rows += 1;
    }
    Matrix::new(rows, cols, data)
}

/// Writes a 1-D or 2-D f32 array as `.npy`, atomically (temporary file + rename).
pub fn write_npy(path: impl AsRef<Path>, data: &[f32], shape: &[usize]) -> Result<()> {
    let path = path.as_ref();
    let t = Tensor::from_slice(data, shape, &Device::Cpu)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".ddaebm-")
        .suffix(".npy")
        .tempfile_in(&dir)
        .with_context(|| format!("{}: cannot create a file there", dir.display()))?;
    t.write_npy(tmp.path())?;
    tmp.persist(path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// A stratified split of labelled rows for a detector benchmark: `test_fraction` of every class
/// `0..classes` is held out (rounded), the rest of the in-distribution classes `0..in_classes`
/// is for training. Returns `(train, held-out in-distribution, held-out out-of-distribution)`
/// row indices; the training indices are shuffled. Classes are shuffled in order, from `rng`.
pub fn stratified_split(
    labels: &[usize],
    classes: usize,
    in_classes: usize,
    test_fraction: f64,
    rng: &mut impl rand::Rng,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    use rand::seq::SliceRandom;
    let (mut train, mut test_in, mut test_out) = (vec![], vec![], vec![]);
    for class in 0..classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        idx.shuffle(rng);
        let n_test = (idx.len() as f64 * test_fraction).round() as usize;
        let (test, rest) = idx.split_at(n_test);
        if class < in_classes {
            test_in.extend_from_slice(test);
            train.extend_from_slice(rest);
        } else {
            test_out.extend_from_slice(test);
        }
    }
    train.shuffle(rng);
    (train, test_in, test_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn csv_with_and_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let m = load_matrix(write(&dir, "a.csv", "a,b\n1,2\n3.5,-4\n"), None).unwrap();
        assert_eq!(m, Matrix::new(2, 2, vec![1.0, 2.0, 3.5, -4.0]).unwrap());
        let m = load_matrix(write(&dir, "b.csv", "1,2\n3,4\n"), None).unwrap();
        assert_eq!(m.rows, 2);
    }

    #[test]
    fn bad_csv_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_matrix(write(&dir, "c.csv", "1,2\n3,x\n"), None).unwrap_err();
        assert!(format!("{e:#}").contains("line 2 column 2"), "{e:#}");
        let e = load_matrix(write(&dir, "d.csv", "1,2\n3\n"), None).unwrap_err();
        assert!(format!("{e:#}").contains("fields"), "{e:#}");
        let e = load_matrix(write(&dir, "e.csv", "1,2\nnan,4\n"), None).unwrap_err();
        assert!(format!("{e:#}").contains("row 1 column 0"), "{e:#}");
        let e = load_matrix(dir.path().join("missing.csv"), None).unwrap_err();
        assert!(format!("{e:#}").contains("no such file"), "{e:#}");
        let e = load_matrix(write(&dir, "f.npy", "garbage"), None).unwrap_err();
        assert!(format!("{e:#}").contains("not a valid .npy"), "{e:#}");
    }

    #[test]
    fn npy_round_trip_and_npz_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        write_npy(&p, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]).unwrap();
        let m = load_matrix(&p, None).unwrap();
        assert_eq!((m.rows, m.cols), (3, 2));
        assert_eq!(m.row(2), &[5.0, 6.0]);
        // f64 arrays are converted.
        let t = Tensor::new(&[[1.5f64, 2.5]], &Device::Cpu).unwrap();
        let p64 = dir.path().join("y.npy");
        t.write_npy(&p64).unwrap();
        assert_eq!(load_matrix(&p64, None).unwrap().data, vec![1.5, 2.5]);
        let pz = dir.path().join("z.npz");
        Tensor::write_npz(&[("X", &t), ("y", &t)], &pz).unwrap();
        assert_eq!(load_matrix(&pz, None).unwrap().data, vec![1.5, 2.5]);
        let e = load_matrix(&pz, Some("nope")).unwrap_err();
        assert!(format!("{e:#}").contains("--key"), "{e:#}");
    }

    #[test]
    fn reads_the_shared_adbench_files() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/adbench/classical/45_wine.npz");
        if !p.exists() {
            eprintln!("skipping: {} is absent", p.display());
            return;
        }
        let m = load_matrix(&p, None).unwrap();
        assert_eq!((m.rows, m.cols), (129, 13));
        // The file is deflate-compressed, float64 and Fortran-ordered; values as numpy reads them.
        assert_eq!(&m.row(0)[..3], &[13.29, 1.97, 2.68]);
        assert_eq!(m.row(5)[12], 1060.0);
        assert_eq!(m.row(128)[0], 14.13);
        let y = load_matrix(&p, Some("y")).unwrap();
        assert_eq!(y.data.iter().filter(|&&v| v == 1.0).count(), 10);
    }
}
