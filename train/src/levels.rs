//! Schedule coefficients as device tensors, gathered per sample by level.

use candle::{Device, Result, Tensor};
use ddaebm::Schedule;

/// Every schedule array the training losses need, as `(L, 1)` f32 tensors.
pub struct ScheduleTensors {
    a_s_cum: Tensor,
    sigmas_cum: Tensor,
    a_next: Tensor,
    sigma_next: Tensor,
    post_c1: Tensor,
    post_c2: Tensor,
    post_std: Tensor,
    rec_logvar: Tensor,
}

/// The coefficients of one minibatch, `(B, 1)` each, for levels `k` (pair `(x_k, x_{k+1})`).
pub struct LevelCoefficients {
    pub a_s_cum: Tensor,
    pub sigmas_cum: Tensor,
    /// `a_s[k+1]`
    pub a_next: Tensor,
    /// `sigmas[k+1]`
    pub sigma_next: Tensor,
    pub post_c1: Tensor,
    pub post_c2: Tensor,
    /// `m_k · exp(½ post_logvar[k])`: zero at `k = 0` (no noise on the last step).
    pub post_std: Tensor,
    /// Clamped reconstruction log-variance `max(post_logvar[k], floor)` (`docs/method.md#training`).
    pub rec_logvar: Tensor,
}

fn column(v: impl IntoIterator<Item = f64>, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
    let n = v.len();
    Tensor::from_vec(v, (n, 1), device)
}

impl ScheduleTensors {
    /// `rec_logvar_floor` is the floor of the reconstruction variance (`ln 1e-2` in the toy code).
    pub fn new(s: &Schedule, rec_logvar_floor: f64, device: &Device) -> Result<Self> {
        let t = s.num_timesteps();
        Ok(Self {
            a_s_cum: column(s.a_s_cum[..t].iter().copied(), device)?,
            sigmas_cum: column(s.sigmas_cum[..t].iter().copied(), device)?,
            a_next: column(s.a_s[1..].iter().copied(), device)?,
            sigma_next: column(s.sigmas[1..].iter().copied(), device)?,
            post_c1: column(s.post_c1.iter().copied(), device)?,
            post_c2: column(s.post_c2.iter().copied(), device)?,
            post_std: column(
                s.post_logvar
                    .iter()
                    .enumerate()
                    .map(|(k, lv)| if k == 0 { 0.0 } else { (0.5 * lv).exp() }),
                device,
            )?,
            rec_logvar: column(
                s.post_logvar.iter().map(|lv| lv.max(rec_logvar_floor)),
                device,
            )?,
        })
    }

    /// Gathers the coefficients for a `(B,)` u32 tensor of levels.
    pub fn gather(&self, levels: &Tensor) -> Result<LevelCoefficients> {
        let g = |t: &Tensor| t.index_select(levels, 0);
        Ok(LevelCoefficients {
            a_s_cum: g(&self.a_s_cum)?,
            sigmas_cum: g(&self.sigmas_cum)?,
            a_next: g(&self.a_next)?,
            sigma_next: g(&self.sigma_next)?,
            post_c1: g(&self.post_c1)?,
            post_c2: g(&self.post_c2)?,
            post_std: g(&self.post_std)?,
            rec_logvar: g(&self.rec_logvar)?,
        })
    }
}

impl LevelCoefficients {
    /// The forward pair `(x_k, x_{k+1})` from clean `x` and two independent noises.
    pub fn forward_pair(
        &self,
        x: &Tensor,
        eps1: &Tensor,
        eps2: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let x_k = (x.broadcast_mul(&self.a_s_cum)? + eps1.broadcast_mul(&self.sigmas_cum)?)?;
        let x_next = (x_k.broadcast_mul(&self.a_next)? + eps2.broadcast_mul(&self.sigma_next)?)?;
        Ok((x_k, x_next))
    }

    /// Posterior mean `μ̃ = c1·x̂ + c2·x_{k+1}`.
    pub fn posterior_mean(&self, x_hat: &Tensor, x_next: &Tensor) -> Result<Tensor> {
        x_hat.broadcast_mul(&self.post_c1)? + x_next.broadcast_mul(&self.post_c2)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddaebm::ScheduleConfig;

    #[test]
    fn gathers_by_level_and_masks_the_last_step() {
        let s = Schedule::new(ScheduleConfig::image(4)).unwrap();
        let st = ScheduleTensors::new(&s, 1e-2f64.ln(), &Device::Cpu).unwrap();
        let levels = Tensor::new(&[0u32, 3, 1], &Device::Cpu).unwrap();
        let c = st.gather(&levels).unwrap();
        let col = |t: &Tensor| -> Vec<f32> { t.squeeze(1).unwrap().to_vec1().unwrap() };
        assert_eq!(col(&c.a_next)[1], s.a_s[4] as f32);
        assert_eq!(col(&c.sigma_next)[0], s.sigmas[1] as f32);
        assert_eq!(col(&c.post_std)[0], 0.0);
        assert_eq!(col(&c.post_std)[2], (0.5 * s.post_logvar[1]).exp() as f32);
        // k = 0: post_logvar −9.1 is floored at ln 1e-2; k = 1 (−0.82) is not.
        assert_eq!(col(&c.rec_logvar)[0], 1e-2f64.ln() as f32);
        assert_eq!(col(&c.rec_logvar)[2], s.post_logvar[1] as f32);
    }
}
