//! The architecture of a model's networks as stored in the model file: [`NetworkConfig`] (the
//! MLPs of vector data, the energy's base measure and soft clip) and [`ImageConfig`] (the
//! convolutional networks of image data). Plain data with its validation; the networks built
//! from it live in [`crate::energy`] and [`crate::sampler`]. See `docs/format.md` for every
//! field and `docs/method.md#networks` for what the networks compute.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest input dimension or layer width a model may declare. Keeps a hostile model file from
/// asking for absurd allocations before its tensors are checked.
pub const MAX_WIDTH: usize = 1 << 20;

/// Most components a mixture base measure may have.
pub const MAX_BASE_COMPONENTS: usize = 1024;

/// Architecture of the three networks; stored in the model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Number of input features `d`.
    pub input_dim: usize,
    /// Size of the generator's latent `z` (`nz`).
    pub latent_dim: usize,
    /// Width of the sinusoidal level embedding (even, ≥ 4).
    pub time_embed_dim: usize,
    /// Widths of the x- and t-branch MLPs; their last entry is the width each branch emits.
    pub branch_widths: Vec<usize>,
    /// Hidden widths of the head MLP (its output layer is added on top).
    pub head_widths: Vec<usize>,
    /// Width of the encoder head's output, before the μ / log-variance layers.
    pub encoder_features: usize,
    /// When positive, adds the log-density of N(0, s²I) in normalised units, `−½‖x‖²/s²` (no
    /// constant), to the energy network's output, with `s = base_std`. Absent in older files:
    /// `0` (no base measure).
    #[serde(default)]
    pub base_std: f32,
    /// When positive, the energy network's MLP sees `x / √(1 + (x/c)²)` per feature instead of
    /// `x`: the identity near 0, bounded by ±c. Absent in older files: `0` (off).
    #[serde(default)]
    pub input_soft_clip: f32,
    /// Convolutional networks for images (`input_dim = C·H·W`); absent: the MLPs, and the MLP
    /// sizes above (`branch_widths`, `head_widths`, `encoder_features`) are the ones used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageConfig>,
    /// When positive, the energy's base measure is a Gaussian mixture with this many components
    /// per level ([`crate::energy::base`]) instead of `N(0, s²I)`; `base_std` must then be 0.
    /// Absent in older files: `0`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub base_components: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl NetworkConfig {
    /// The reference layout of the vector networks (`docs/method.md#networks`) for `input_dim` features.
    pub fn toy(input_dim: usize) -> Self {
        Self {
            input_dim,
            latent_dim: 2,
            time_embed_dim: 16,
            branch_widths: vec![16, 32],
            head_widths: vec![300, 300],
            encoder_features: 16,
            base_std: 0.0,
            input_soft_clip: 0.0,
            image: None,
            base_components: 0,
        }
    }

    /// Checks every size is in range; called before anything is allocated from a config.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            self.input_dim,
            self.latent_dim,
            self.time_embed_dim,
            self.encoder_features,
        ];
        let widths = self.branch_widths.iter().chain(&self.head_widths);
        if sizes.iter().chain(widths).any(|&w| w == 0 || w > MAX_WIDTH) {
            return Err(Error::InvalidArgument(format!(
                "network sizes must be in 1..={MAX_WIDTH}: {self:?}"
            )));
        }
        if self.branch_widths.is_empty() || self.branch_widths.len() > 16 {
            return Err(Error::InvalidArgument(
                "branch_widths needs 1 to 16 entries".into(),
            ));
        }
        if self.head_widths.len() > 16 {
            return Err(Error::InvalidArgument(
                "head_widths holds at most 16 entries".into(),
            ));
        }
        for (name, v) in [
            ("input_soft_clip", self.input_soft_clip),
            ("base_std", self.base_std),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be finite and >= 0, got {v}"
                )));
            }
        }
        if self.time_embed_dim < 4 || self.time_embed_dim % 2 != 0 {
            return Err(Error::InvalidArgument(format!(
                "time_embed_dim must be even and >= 4, got {}",
                self.time_embed_dim
            )));
        }
        if let Some(image) = &self.image {
            image.validate(self.input_dim)?;
        }
        if self.base_components > MAX_BASE_COMPONENTS {
            return Err(Error::InvalidArgument(format!(
                "base_components must be at most {MAX_BASE_COMPONENTS}, got {}",
                self.base_components
            )));
        }
        if self.base_components > 0 && (self.base_std > 0.0 || self.image.is_some()) {
            return Err(Error::InvalidArgument(
                "a mixture base measure (base_components) excludes base_std and image networks"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The width each branch of the time-conditioned MLP emits.
    pub fn branch_out(&self) -> usize {
        *self.branch_widths.last().expect("validated non-empty")
    }
}

/// Largest image side and channel count a model may declare.
pub const MAX_IMAGE_SIDE: usize = 4096;
pub const MAX_CHANNELS: usize = 4096;

/// Shape, pixel scaling and network sizes of an image model; stored in the model file as the
/// `image` entry of the network config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Input channels `C` (1 for grey, 3 for RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// The raw pixel range `[lo, hi]`; the model's normalisation maps it onto [−1, 1]
    /// (`mean = (lo + hi)/2`, `std = (hi − lo)/2` for every value).
    pub pixel_range: [f32; 2],
    /// Channels of the first stage; stage `i` has `base_channels · channel_mult[i]`.
    pub base_channels: usize,
    /// One entry per resolution; each stage after the first halves the height and width.
    pub channel_mult: Vec<usize>,
    /// Residual blocks per stage.
    pub blocks_per_stage: usize,
    /// GroupNorm groups; must divide every stage's channel count.
    pub groups: usize,
}

impl ImageConfig {
    /// Values per image, `C·H·W`.
    pub fn values(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Channels of stage `i`.
    pub fn stage_channels(&self, i: usize) -> usize {
        self.base_channels * self.channel_mult[i]
    }

    /// Width of the level (and latent) embedding the blocks are conditioned on.
    pub fn embed_dim(&self) -> usize {
        4 * self.base_channels
    }

    /// The default networks for `channels × height × width` images with raw values in
    /// `pixel_range`: 16 base channels (GroupNorm with 4 groups), one block per stage, and as many stages as the image
    /// can be halved while both sides stay even and at least 8 (at most 4).
    pub fn for_shape(channels: usize, height: usize, width: usize, pixel_range: [f32; 2]) -> Self {
        let mut stages = 1;
        let (mut h, mut w) = (height, width);
        while stages < 4 && h % 2 == 0 && w % 2 == 0 && h >= 8 && w >= 8 {
            stages += 1;
            h /= 2;
            w /= 2;
        }
        let channel_mult = (0..stages).map(|i| if i == 0 { 1 } else { 2 }).collect();
        Self {
            channels,
            height,
            width,
            pixel_range,
            base_channels: 16,
            channel_mult,
            blocks_per_stage: 1,
            groups: 4,
        }
    }

    /// Checks the sizes against each other and against `input_dim`.
    pub fn validate(&self, input_dim: usize) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidArgument(format!("image config: {msg}")));
        let sides = [self.height, self.width];
        if sides.iter().any(|&s| s == 0 || s > MAX_IMAGE_SIDE) {
            return bad(format!(
                "height and width must be in 1..={MAX_IMAGE_SIDE}, got {}×{}",
                self.height, self.width
            ));
        }
        if self.channels == 0 || self.channels > MAX_CHANNELS {
            return bad(format!(
                "channels must be in 1..={MAX_CHANNELS}, got {}",
                self.channels
            ));
        }
        if self.values() != input_dim {
            return bad(format!(
                "{}×{}×{} = {} values but input_dim is {input_dim}",
                self.channels,
                self.height,
                self.width,
                self.values()
            ));
        }
        let [lo, hi] = self.pixel_range;
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return bad(format!(
                "pixel_range must be finite with lo < hi, got {lo}, {hi}"
            ));
        }
        if self.channel_mult.is_empty() || self.channel_mult.len() > 8 {
            return bad("channel_mult needs 1 to 8 entries".into());
        }
        let stages = self.channel_mult.len() as u32 - 1;
        if self.height % (1 << stages) != 0 || self.width % (1 << stages) != 0 {
            return bad(format!(
                "{} stages halve the image {stages} times, but {}×{} is not divisible by {}",
                self.channel_mult.len(),
                self.height,
                self.width,
                1 << stages
            ));
        }
        if !(1..=16).contains(&self.blocks_per_stage) {
            return bad("blocks_per_stage must be in 1..=16".into());
        }
        if self.groups == 0 {
            return bad("groups must be at least 1".into());
        }
        for (i, &m) in self.channel_mult.iter().enumerate() {
            let c = self.base_channels.checked_mul(m);
            if m == 0 || c.is_none_or(|c| c == 0 || c > MAX_CHANNELS) {
                return bad(format!(
                    "stage {i} has {} × {m} channels; must be in 1..={MAX_CHANNELS}",
                    self.base_channels
                ));
            }
            if self.stage_channels(i) % self.groups != 0 {
                return bad(format!(
                    "{} groups do not divide stage {i}'s {} channels",
                    self.groups,
                    self.stage_channels(i)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits_config() -> ImageConfig {
        let mut cfg = ImageConfig::for_shape(1, 8, 8, [0.0, 16.0]);
        cfg.base_channels = 8;
        cfg.groups = 4;
        cfg
    }

    #[test]
    fn older_configs_without_the_new_fields_still_parse() {
        let json = r#"{"input_dim":2,"latent_dim":2,"time_embed_dim":16,
            "branch_widths":[16,32],"head_widths":[8],"encoder_features":16}"#;
        let cfg: NetworkConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.base_std, 0.0);
        assert_eq!(cfg.input_soft_clip, 0.0);
        let mut bad = cfg.clone();
        bad.input_soft_clip = f32::NAN;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn rejects_absurd_configs() {
        let mut cfg = NetworkConfig::toy(2);
        cfg.input_dim = 1_000_000_000_000;
        assert!(cfg.validate().is_err());
        let mut cfg = NetworkConfig::toy(2);
        cfg.time_embed_dim = 3;
        assert!(cfg.validate().is_err());
        let mut cfg = NetworkConfig::toy(2);
        cfg.branch_widths.clear();
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn default_stages_follow_the_image_size() {
        let stages = |h, w| {
            ImageConfig::for_shape(1, h, w, [0.0, 1.0])
                .channel_mult
                .len()
        };
        assert_eq!(stages(8, 8), 2);
        assert_eq!(stages(28, 28), 3);
        assert_eq!(stages(32, 32), 4);
        assert_eq!(stages(64, 64), 4);
        assert_eq!(stages(5, 7), 1);
        for (h, w) in [(8, 8), (28, 28), (32, 32), (64, 64), (5, 7)] {
            let cfg = ImageConfig::for_shape(3, h, w, [0.0, 255.0]);
            cfg.validate(3 * h * w).unwrap();
        }
    }

    #[test]
    fn rejects_inconsistent_image_configs() {
        let ok = digits_config();
        ok.validate(64).unwrap();
        let cases: Vec<(ImageConfig, usize, &str)> = vec![
            (ok.clone(), 65, "input_dim"),
            (
                ImageConfig {
                    pixel_range: [1.0, 1.0],
                    ..ok.clone()
                },
                64,
                "pixel_range",
            ),
            (
                ImageConfig {
                    pixel_range: [0.0, f32::NAN],
                    ..ok.clone()
                },
                64,
                "pixel_range",
            ),
            (
                ImageConfig {
                    channel_mult: vec![1; 5],
                    ..ok.clone()
                },
                64,
                "divisible",
            ),
            (
                ImageConfig {
                    groups: 3,
                    ..ok.clone()
                },
                64,
                "groups",
            ),
            (
                ImageConfig {
                    groups: 0,
                    ..ok.clone()
                },
                64,
                "groups",
            ),
            (
                ImageConfig {
                    base_channels: 0,
                    ..ok.clone()
                },
                64,
                "stage 0",
            ),
            (
                ImageConfig {
                    base_channels: usize::MAX,
                    ..ok.clone()
                },
                64,
                "stage 0",
            ),
            (
                ImageConfig {
                    height: 0,
                    ..ok.clone()
                },
                0,
                "height",
            ),
            (
                ImageConfig {
                    channels: 1 << 40,
                    ..ok.clone()
                },
                64,
                "channels",
            ),
            (
                ImageConfig {
                    blocks_per_stage: 0,
                    ..ok.clone()
                },
                64,
                "blocks",
            ),
            (
                ImageConfig {
                    channel_mult: vec![],
                    ..ok.clone()
                },
                64,
                "channel_mult",
            ),
        ];
        for (cfg, dim, fragment) in cases {
            let err = cfg.validate(dim).unwrap_err().to_string();
            assert!(err.contains(fragment), "{cfg:?}: {err}");
        }
    }
}
