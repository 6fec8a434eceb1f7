//! Adam whose state can be saved and restored.
//!
//! candle-nn's `AdamW` keeps its moments and step count private, so a checkpoint could not hold
//! them and a resumed run would restart Adam from zero moments (a visible jump in the losses).
//! [`Adam`] does the same arithmetic as `candle_nn::AdamW` (with the same operation order, so
//! its updates are bit-identical; tested) and exposes its state by parameter name.

use anyhow::{bail, Result};
use candle::{Tensor, Var};

/// Adam hyper-parameters (decoupled weight decay as in AdamW).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// Adam over a fixed, named list of variables.
pub struct Adam {
    slots: Vec<Slot>,
    step_t: usize,
    params: AdamParams,
}

/// The saveable part of an [`Adam`]: step count and both moments of every parameter.
pub struct AdamState {
    pub step_t: usize,
    /// `(name, first moment, second moment)` in the optimiser's parameter order.
    pub moments: Vec<(String, Tensor, Tensor)>,
}

impl Adam {
    /// Starts with zero moments for every `(name, var)`.
    pub fn new(vars: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                let v = var.as_tensor().zeros_like()?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            step_t: 0,
            params,
        })
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.params.lr
    }

    /// Changes the learning rate of the following steps (the moments are kept).
    pub fn set_lr(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// Back-propagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// One update of every variable that has a gradient in `grads`.
    pub fn step(&mut self, grads: &candle::backprop::GradStore) -> Result<()> {
        self.step_t += 1;
        let AdamParams {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        let scale_m = 1f64 / (1f64 - beta1.powi(self.step_t as i32));
        let scale_v = 1f64 / (1f64 - beta2.powi(self.step_t as i32));
        for slot in self.slots.iter_mut() {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let next_m = ((&slot.m * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let decayed = (slot.var.as_tensor() * (1f64 - lr * weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + eps)?)?;
            slot.var.set(&(decayed - (adjusted * lr)?)?)?;
            // Detached: with second-order gradients on, `g` carries the whole step's graph,
            // which the moments would otherwise keep alive from one step to the next.
            slot.m = next_m.detach();
            slot.v = next_v.detach();
        }
        Ok(())
    }

    /// A copy of the step count and moments.
    pub fn state(&self) -> Result<AdamState> {
        let moments = self
            .slots
            .iter()
            .map(|s| Ok((s.name.clone(), s.m.copy()?, s.v.copy()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamState {
            step_t: self.step_t,
            moments,
        })
    }

    /// Checks that `state` was saved by an optimiser over the same parameters (names, order and
    /// shapes), without changing anything.
    pub fn check(&self, state: &AdamState) -> Result<()> {
        if state.moments.len() != self.slots.len() {
            bail!(
                "the saved optimiser has {} parameters, this one {}",
                state.moments.len(),
                self.slots.len()
            );
        }
        for (slot, (name, m, v)) in self.slots.iter().zip(&state.moments) {
            let shape = slot.var.shape();
            if &slot.name != name || m.shape() != shape || v.shape() != shape {
                bail!(
                    "saved optimiser parameter {name} {:?} does not match {} {:?}",
                    m.dims(),
                    slot.name,
                    shape.dims()
                );
            }
        }
        Ok(())
    }

    /// Restores a state saved by [`Adam::state`] from an optimiser over the same parameters;
    /// nothing changes when [`Adam::check`] refuses it.
    pub fn restore(&mut self, state: AdamState) -> Result<()> {
        self.check(&state)?;
        for (slot, (_, m, v)) in self.slots.iter_mut().zip(state.moments) {
            let (device, dtype) = (slot.var.device().clone(), slot.var.dtype());
            slot.m = m.to_device(&device)?.to_dtype(dtype)?;
            slot.v = v.to_device(&device)?.to_dtype(dtype)?;
        }
        self.step_t = state.step_t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{Device, D};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    fn loss(w: &Var, x: &Tensor) -> Tensor {
        x.matmul(w.as_tensor())
            .unwrap()
            .tanh()
            .unwrap()
            .sqr()
            .unwrap()
            .sum(D::Minus1)
            .unwrap()
            .mean_all()
            .unwrap()
    }

    #[test]
    fn updates_are_bit_identical_to_candle_adamw_and_resume_exactly() {
        // As in training: gradients keep their graph, which the moments must not hold on to.
        crate::trainer::enable_second_order_gradients().unwrap();
        let dev = Device::Cpu;
        let init = Tensor::randn(0f32, 1., (5, 3), &dev).unwrap();
        let x = Tensor::randn(0f32, 1., (8, 5), &dev).unwrap();
        let params = AdamParams {
            lr: 0.01,
            beta1: 0.0,
            beta2: 0.9,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let w_ref = Var::from_tensor(&init.copy().unwrap()).unwrap();
        let mut reference = AdamW::new(
            vec![w_ref.clone()],
            ParamsAdamW {
                lr: params.lr,
                beta1: params.beta1,
                beta2: params.beta2,
                eps: params.eps,
                weight_decay: params.weight_decay,
            },
        )
        .unwrap();
        let w = Var::from_tensor(&init.copy().unwrap()).unwrap();
        let mut ours = Adam::new(vec![("w".into(), w.clone())], params).unwrap();
        for _ in 0..5 {
            reference.backward_step(&loss(&w_ref, &x)).unwrap();
            ours.backward_step(&loss(&w, &x)).unwrap();
        }
        let same = |a: &Var, b: &Var| {
            a.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                == b.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
        };
        assert!(same(&w, &w_ref), "5 steps differ from candle's AdamW");
        assert!(
            ours.slots
                .iter()
                .all(|s| !s.m.track_op() && !s.v.track_op()),
            "the moments keep a gradient graph alive across steps"
        );

        // Save, take 5 more steps, then restore into a fresh optimiser on a copy of the weights
        // taken at the save: the restored run repeats the same 5 steps exactly.
        let saved = ours.state().unwrap();
        let w_copy = Var::from_tensor(&w.as_tensor().copy().unwrap()).unwrap();
        for _ in 0..5 {
            ours.backward_step(&loss(&w, &x)).unwrap();
        }
        let mut resumed = Adam::new(vec![("w".into(), w_copy.clone())], params).unwrap();
        resumed.restore(saved).unwrap();
        for _ in 0..5 {
            resumed.backward_step(&loss(&w_copy, &x)).unwrap();
        }
        assert!(same(&w, &w_copy), "the restored optimiser diverged");

        // A state from another parameter list is refused without changing anything.
        let other = Adam::new(
            vec![(
                "v".into(),
                Var::zeros((2, 2), candle::DType::F32, &dev).unwrap(),
            )],
            params,
        )
        .unwrap();
        assert!(resumed.restore(other.state().unwrap()).is_err());
    }
}
