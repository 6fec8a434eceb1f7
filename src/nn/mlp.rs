//! MLPs: a chain of linear layers with PReLUs ([`Mlp`]) and the time-conditioned MLP that every
//! vector-data network is built from ([`TimeConditionedMlp`]: an x-branch on the input, a
//! t-branch on the level embedding, and a head on their concatenation).

use candle::{Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Linear, VarBuilder};

use crate::architecture::NetworkConfig;
use crate::error::{Error, Result};
use crate::nn::embedding::timestep_embedding;
use crate::nn::linear::{linear, linear_forward};
use crate::nn::prelu::Prelu;

/// A chain of linear layers with (optional BatchNorm, then) PReLU between them and nothing after
/// the last one.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    norms: Vec<BatchNorm>,
    acts: Vec<Prelu>,
}

impl Mlp {
    /// Builds `MLP(in_dim, widths)`; tensors are named `linear{i}`, `norm{i}`, `act{i}`.
    pub fn new(in_dim: usize, widths: &[usize], batch_norm: bool, vb: VarBuilder) -> Result<Self> {
        let mut layers = Vec::with_capacity(widths.len());
        let (mut norms, mut acts) = (vec![], vec![]);
        let mut prev = in_dim;
        for (i, &w) in widths.iter().enumerate() {
            layers.push(linear(prev, w, vb.pp(format!("linear{i}")))?);
            if i + 1 < widths.len() {
                if batch_norm {
                    let cfg = BatchNormConfig {
                        eps: 1e-5,
                        remove_mean: true,
                        affine: true,
                        momentum: 0.1,
                    };
                    norms.push(candle_nn::batch_norm(w, cfg, vb.pp(format!("norm{i}")))?);
                }
                acts.push(Prelu::new(vb.pp(format!("act{i}")))?);
            }
            prev = w;
        }
        Ok(Self {
            layers,
            norms,
            acts,
        })
    }

    /// Each linear layer with the PReLU after it (none after the last), for inference code
    /// outside candle. Fails for an MLP with BatchNorm (its statistics are not folded).
    pub fn layers(&self) -> Result<Vec<(&Linear, Option<&Prelu>)>> {
        if !self.norms.is_empty() {
            return Err(Error::InvalidArgument(
                "an MLP with BatchNorm has no plain layer list".into(),
            ));
        }
        Ok(self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l, self.acts.get(i)))
            .collect())
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle::Result<Tensor> {
        let mut h = xs.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = linear_forward(layer, &h)?;
            if let Some(act) = self.acts.get(i) {
                if let Some(norm) = self.norms.get(i) {
                    h = norm.forward_t(&h, train)?;
                }
                h = act.forward(&h)?;
            }
        }
        Ok(h)
    }
}

/// `head([x_branch(x), t_branch(emb(k))])`: the trunk shared by all three networks.
#[derive(Clone, Debug)]
pub struct TimeConditionedMlp {
    x_branch: Mlp,
    t_branch: Mlp,
    head: Mlp,
    embedding: Tensor,
}

impl TimeConditionedMlp {
    /// `in_dim` inputs, `out_dim` outputs, BatchNorm on the hidden layers of the x-branch and the
    /// head when `batch_norm` (never on the t-branch).
    pub fn new(
        cfg: &NetworkConfig,
        num_levels: usize,
        in_dim: usize,
        out_dim: usize,
        batch_norm: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        cfg.validate()?;
        let x_branch = Mlp::new(in_dim, &cfg.branch_widths, batch_norm, vb.pp("x_branch"))?;
        let t_branch = Mlp::new(
            cfg.time_embed_dim,
            &cfg.branch_widths,
            false,
            vb.pp("t_branch"),
        )?;
        let head_widths: Vec<usize> = cfg.head_widths.iter().copied().chain([out_dim]).collect();
        let head = Mlp::new(
            2 * cfg.branch_out(),
            &head_widths,
            batch_norm,
            vb.pp("head"),
        )?;
        let embedding = timestep_embedding(num_levels, cfg.time_embed_dim, vb.device())?
            .to_dtype(vb.dtype())?;
        Ok(Self {
            x_branch,
            t_branch,
            head,
            embedding,
        })
    }

    pub fn x_branch(&self) -> &Mlp {
        &self.x_branch
    }

    pub fn head(&self) -> &Mlp {
        &self.head
    }

    /// The t-branch's output for every level, shape (T, branch width): the level features the
    /// head sees, gathered per row by [`TimeConditionedMlp::forward_t`].
    pub fn level_table(&self) -> Result<Tensor> {
        Ok(self.t_branch.forward_t(&self.embedding, false)?)
    }

    /// The t-branch's output for `level`, shape (1, branch width).
    pub fn level_features(&self, level: usize) -> Result<Tensor> {
        let emb = self.embedding.narrow(0, level, 1)?;
        Ok(self.t_branch.forward_t(&emb, false)?)
    }

    /// `xs`: (B, in_dim) f32; `levels`: (B,) u32 level indices.
    ///
    /// The t-branch (no BatchNorm, so each row's output depends on its level only) runs once on
    /// the T rows of the embedding table and its outputs are gathered per row: T rows through
    /// its layers instead of B, forward and backward.
    pub fn forward_t(&self, xs: &Tensor, levels: &Tensor, train: bool) -> Result<Tensor> {
        let hx = self.x_branch.forward_t(xs, train)?;
        let ht = self
            .t_branch
            .forward_t(&self.embedding, train)?
            .index_select(levels, 0)?;
        let h = Tensor::cat(&[hx, ht], 1)?;
        Ok(self.head.forward_t(&h, train)?)
    }
}
