//! Training checkpoints: the complete state of a `fit` run in one `.safetensors` file, written
//! atomically so that a crash at any moment leaves either the previous checkpoint or the new one.
//!
//! | tensor | content |
//! |---|---|
//! | `var/<name>` | every trainer variable (energy, generator, encoder, BatchNorm statistics) |
//! | `ema/<name>` | the EMA of the energy weights |
//! | `adam_energy/m/<name>`, `adam_energy/v/<name>` | the energy optimiser's moments |
//! | `adam_generator/m/<name>`, `adam_generator/v/<name>` | the generator optimiser's moments |
//! | `loop/order` | the current shuffle of the training rows (u32) |
//!
//! The `__metadata__` entry `ddaebm_checkpoint` holds [`CheckpointInfo`] as JSON: step, random
//! stream position, optimiser step counts, batch cursor, the last losses and a fingerprint of the
//! data and configuration, which `--resume` compares so that a checkpoint is never continued
//! with other data or settings.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::method::{RngState, StepStats, TrainerState};
use crate::optimizer::AdamState;

/// Value of the `format` metadata key of a checkpoint.
pub const CHECKPOINT_FORMAT: &str = "ddaebm-checkpoint";
/// Checkpoint layout version written and read by this build.
pub const CHECKPOINT_VERSION: u32 = 1;

/// A `fit` run between two iterations.
pub struct Checkpoint {
    pub trainer: TrainerState,
    /// The training rows' current shuffle and the position of the next batch in it.
    pub order: Vec<u32>,
    pub cursor: usize,
    /// What the run was started with (see [`Checkpoint::check_fingerprint`]).
    pub fingerprint: serde_json::Value,
    /// Losses of the last iteration before the checkpoint.
    pub last: StepStats,
}

/// The JSON part of a checkpoint file.
#[derive(Serialize, Deserialize)]
struct CheckpointInfo {
    step: usize,
    rng_seed: String,
    rng_stream: u64,
    /// A u128, as a decimal string (JSON numbers are not exact beyond 2^53).
    rng_word_pos: String,
    adam_energy_step: usize,
    adam_energy_params: Vec<String>,
    adam_generator_step: usize,
    adam_generator_params: Vec<String>,
    cursor: usize,
    fingerprint: serde_json::Value,
    last: StepStats,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Result<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        bail!("the random seed {s:?} is not 64 hex digits");
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .with_context(|| format!("the random seed {s:?} is not hex"))?;
    }
    Ok(out)
}

/// 64-bit FNV-1a of `bytes`: a stable fingerprint of the training data (not cryptographic; it
/// only has to tell a different data file apart).
pub fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Checkpoint {
    /// Writes the checkpoint to `path` atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let t = &self.trainer;
        let mut tensors: Vec<(String, Tensor)> = vec![];
        for (n, v) in &t.vars {
            tensors.push((format!("var/{n}"), v.clone()));
        }
        for (n, v) in &t.ema {
            tensors.push((format!("ema/{n}"), v.clone()));
        }
        for (prefix, opt) in [
            ("adam_energy", &t.opt_energy),
            ("adam_generator", &t.opt_generator),
        ] {
            for (n, m, v) in &opt.moments {
                tensors.push((format!("{prefix}/m/{n}"), m.clone()));
                tensors.push((format!("{prefix}/v/{n}"), v.clone()));
            }
        }
        let n = self.order.len();
        tensors.push((
            "loop/order".into(),
            Tensor::from_slice(&self.order, n, &Device::Cpu)?,
        ));
        let names = |opt: &AdamState| opt.moments.iter().map(|(n, _, _)| n.clone()).collect();
        let info = CheckpointInfo {
            step: t.step,
            rng_seed: hex(&t.rng.seed),
            rng_stream: t.rng.stream,
            rng_word_pos: t.rng.word_pos.to_string(),
            adam_energy_step: t.opt_energy.step_t,
            adam_energy_params: names(&t.opt_energy),
            adam_generator_step: t.opt_generator.step_t,
            adam_generator_params: names(&t.opt_generator),
            cursor: self.cursor,
            fingerprint: self.fingerprint.clone(),
            last: self.last,
        };
        let mut cpu = Vec::with_capacity(tensors.len());
        for (name, tensor) in tensors {
            cpu.push((name, tensor.to_device(&Device::Cpu)?.contiguous()?));
        }
        let metadata = HashMap::from([
            ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
            ("format_version".to_string(), CHECKPOINT_VERSION.to_string()),
            (
                "ddaebm_checkpoint".to_string(),
                serde_json::to_string(&info)?,
            ),
        ]);
        let bytes =
            safetensors::serialize(cpu.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
                .context("cannot serialise the checkpoint")?;
        ddaebm::format::write_atomically(path, &bytes)
            .with_context(|| format!("cannot write checkpoint {}", path.display()))?;
        Ok(())
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let what = || format!("checkpoint {}", path.display());
        let bytes = std::fs::read(path).with_context(what)?;
        let st = safetensors::SafeTensors::deserialize(&bytes).with_context(what)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).with_context(what)?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(CHECKPOINT_FORMAT) {
            bail!("{} is not a ddaebm training checkpoint", path.display());
        }
        let version = meta.get("format_version").map(String::as_str);
        if version != Some(&CHECKPOINT_VERSION.to_string()) {
            bail!(
                "{}: checkpoint version {version:?} is not the {CHECKPOINT_VERSION} this build \
                 writes",
                path.display()
            );
        }
        let info: CheckpointInfo = serde_json::from_str(
            meta.get("ddaebm_checkpoint")
                .with_context(|| format!("{}: no checkpoint record", path.display()))?,
        )
        .with_context(what)?;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (name, view) in st.tensors() {
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::U32 => DType::U32,
                other => bail!("{}: tensor {name} has dtype {other:?}", path.display()),
            };
            let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)?;
            tensors.insert(name, t);
        }
        let mut take_prefixed = |prefix: &str| -> Vec<(String, Tensor)> {
            let keys: Vec<String> = tensors
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect();
            let mut out: Vec<(String, Tensor)> = keys
                .into_iter()
                .map(|k| {
                    let t = tensors.remove(&k).expect("listed key");
                    (k[prefix.len()..].to_string(), t)
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        };
        let vars = take_prefixed("var/");
        let ema = take_prefixed("ema/");
        let mut optimizer = |prefix: &str, step_t: usize, names: &[String]| -> Result<AdamState> {
            let mut m: HashMap<String, Tensor> =
                take_prefixed(&format!("{prefix}/m/")).into_iter().collect();
            let mut v: HashMap<String, Tensor> =
                take_prefixed(&format!("{prefix}/v/")).into_iter().collect();
            if m.len() != names.len() || v.len() != names.len() {
                bail!("{}: {prefix} moments are incomplete", path.display());
            }
            let moments = names
                .iter()
                .map(|n| {
                    let (Some(mt), Some(vt)) = (m.remove(n), v.remove(n)) else {
                        bail!("{}: {prefix} has no moments for {n}", path.display());
                    };
                    Ok((n.clone(), mt, vt))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(AdamState { step_t, moments })
        };
        let opt_energy = optimizer(
            "adam_energy",
            info.adam_energy_step,
            &info.adam_energy_params,
        )?;
        let opt_generator = optimizer(
            "adam_generator",
            info.adam_generator_step,
            &info.adam_generator_params,
        )?;
        let order = tensors
            .remove("loop/order")
            .with_context(|| format!("{}: no row order", path.display()))?
            .to_vec1::<u32>()?;
        if let Some(extra) = tensors.keys().next() {
            bail!("{}: unexpected tensor {extra}", path.display());
        }
        if info.cursor > order.len() {
            bail!(
                "{}: batch cursor {} is past the {} rows",
                path.display(),
                info.cursor,
                order.len()
            );
        }
        let rng = RngState {
            seed: unhex32(&info.rng_seed)?,
            stream: info.rng_stream,
            word_pos: info
                .rng_word_pos
                .parse()
                .with_context(|| format!("{}: bad random stream position", path.display()))?,
        };
        Ok(Self {
            trainer: TrainerState {
                step: info.step,
                rng,
                vars,
                ema,
                opt_energy,
                opt_generator,
            },
            order,
            cursor: info.cursor,
            fingerprint: info.fingerprint,
            last: info.last,
        })
    }

    /// Refuses to continue a run started with other data or settings.
    pub fn check_fingerprint(&self, expected: &serde_json::Value, path: &Path) -> Result<()> {
        if &self.fingerprint == expected {
            return Ok(());
        }
        let differing: Vec<String> = match (&self.fingerprint, expected) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => a
                .keys()
                .chain(b.keys())
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            _ => vec!["everything".into()],
        };
        bail!(
            "{} was written by a run with different {}; delete it or drop --resume to start over",
            path.display(),
            differing.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv1a64(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(*b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn seed_hex_round_trips() {
        let seed: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex32(&hex(&seed)).unwrap(), seed);
        assert!(unhex32("zz").is_err());
        assert!(unhex32(&"g".repeat(64)).is_err());
    }
}
