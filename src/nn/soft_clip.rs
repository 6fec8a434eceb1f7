//! The input soft clip `u = x / √(1 + (x/c)²)`: the identity near 0, bounded by ±c. The one
//! home of its formula: the candle path ([`soft_clip`]) and the fused CPU path
//! ([`soft_clip_value`]) both come from here, with the same clamp ([`soft_clip_bound`]).

use candle::Tensor;

use crate::error::Result;

/// There `1 + (x/c)²` rounds to `(x/c)²` in f32 and the clip returns exactly `±c`; beyond
/// `2¹² · c` it is already within an ulp of `±c`, so moving the input changes nothing a float
/// can show, but keeps `x²` finite.
pub const SOFT_CLIP_SATURATION: f64 = (1u64 << 20) as f64;

/// Largest magnitude fed to the soft clip's formula whatever `c` is: its square, 1e36, is
/// finite in f32. Only a clip width above ~1e12 makes this bound the smaller one.
const SOFT_CLIP_MAX_INPUT: f64 = 1e18;

/// `x / √(1 + (x/c)²)` per element: the identity near 0, bounded by ±c, and finite for every
/// input including ±∞.
///
/// Written plainly, `x²` overflows to ∞ for `|x|` above ~1.8e19 and the quotient becomes `0`
/// (NaN for `x = ±∞`) where it should be `±c`. The input is first clamped to
/// `±min(SOFT_CLIP_SATURATION · c, 1e18)`; the clamp is the identity, bit for bit, on every
/// value inside that range, so ordinary inputs get exactly the plain formula's result.
pub fn soft_clip(xs: &Tensor, c: f32) -> Result<Tensor> {
    let bound = soft_clip_bound(c);
    soft_clip_formula(&xs.clamp(-bound, bound)?, c)
}

/// The clamp [`soft_clip`] applies before its formula: `min(SOFT_CLIP_SATURATION · c, 1e18)`.
pub fn soft_clip_bound(c: f32) -> f64 {
    (SOFT_CLIP_SATURATION * f64::from(c)).min(SOFT_CLIP_MAX_INPUT)
}

/// `x / √(1 + (x/c)²)` as written, without the clamp of [`soft_clip`].
pub fn soft_clip_formula(xs: &Tensor, c: f32) -> Result<Tensor> {
    let c2 = f64::from(c).powi(2);
    Ok(xs.div(&((xs.sqr()? / c2)? + 1.0)?.sqrt()?)?)
}

/// The soft clip of one value on the CPU, as the fused scoring path computes it:
/// `n / √(n² · inv_c2 + 1)` with `n` the value clamped to `±bound` ([`soft_clip_bound`]) and
/// `inv_c2 = 1/c²`. The same function as [`soft_clip`], to float rounding.
#[inline(always)]
pub fn soft_clip_value(v: f32, bound: f32, inv_c2: f32) -> f32 {
    let n = v.clamp(-bound, bound);
    n / (n * n * inv_c2 + 1.0).sqrt()
}

/// `(u, du/dx)` per element: the soft clip and its derivative `(1 + (x/c)²)^(−3/2)`, computed on
/// the clamped input, whose square stays finite (beyond the clamp the slope is 0 to f32
/// precision anyway). Used where a gradient with respect to the input is written out.
pub fn soft_clip_and_slope(xs: &Tensor, c: f32) -> Result<(Tensor, Tensor)> {
    let c2 = f64::from(c).powi(2);
    let clamped = xs.clamp(-soft_clip_bound(c), soft_clip_bound(c))?;
    let s = ((clamped.sqr()? / c2)? + 1.0)?;
    let root = s.sqrt()?;
    let u = clamped.div(&root)?;
    Ok((u, (s * root)?.recip()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::Device;

    #[test]
    fn soft_clip_saturates_instead_of_overflowing() {
        let dev = Device::Cpu;
        let c = 4f32;
        let big = [1e13f32, 1e19, 1e20, 1e30, f32::MAX, f32::INFINITY];
        let xs: Vec<f32> = big.iter().flat_map(|&v| [v, -v]).collect();
        let x = Tensor::new(xs.as_slice(), &dev).unwrap();
        let u: Vec<f32> = soft_clip(&x, c).unwrap().to_vec1().unwrap();
        for (x, u) in xs.iter().zip(&u) {
            assert_eq!(*u, c.copysign(*x), "soft_clip({x})");
        }
        // The formula as written overflows from 1e20 on (x² > f32::MAX): 0 or NaN, not ±c.
        let plain: Vec<f32> = soft_clip_formula(&x, c).unwrap().to_vec1().unwrap();
        assert!(
            plain[4..].iter().all(|u| *u == 0.0 || u.is_nan()),
            "{plain:?}"
        );
        // Inside the clamp both agree bit for bit, up to the bound itself.
        let bound = (SOFT_CLIP_SATURATION * f64::from(c)) as f32;
        let ordinary: Vec<f32> = (-2000..=2000)
            .map(|i| i as f32 * 0.013)
            .chain([1e-40, -1e-40, 1e3, -1e5, 1e6, bound, -bound])
            .collect();
        let x = Tensor::new(ordinary.as_slice(), &dev).unwrap();
        let a: Vec<f32> = soft_clip(&x, c).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = soft_clip_formula(&x, c).unwrap().to_vec1().unwrap();
        assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()));
        // A clip width so large that the fixed bound applies still gives a finite result.
        let u: Vec<f32> = soft_clip(&Tensor::new(&[f32::MAX], &dev).unwrap(), 1e20)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(u[0].is_finite() && u[0] > 0.0, "{u:?}");
    }
}
