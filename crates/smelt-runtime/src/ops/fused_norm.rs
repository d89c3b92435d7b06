//! `RmsNorm`, the load-time fusion ([`crate::fuse`]) of the RMSNorm chain that
//! `torch.onnx.export` writes for Llama-family models:
//!
//! ```text
//! Pow(x, 2) → ReduceMean(axes = [-1], keepdims) → Add(·, eps) → Sqrt → Reciprocal | Div(1, ·)
//!   → Mul(x, ·) [→ Cast(to = FLOAT)] [→ Mul(weight, ·)]
//! ```
//!
//! Inputs: `x` (f32), `eps` (one f32), and the optional `weight` (f32, one value or one per
//! element of the last axis). Each row of the last axis is computed with the chain's own
//! operations in the chain's order, so the result has its bits: the squares rounded to f32
//! (`Pow`), summed in f64 from the first element to the last and divided by the count in f64,
//! then rounded (`ReduceMean`); `mean + eps`, its square root and `1 /` it, each rounded to
//! f32 (a correctly rounded f64 result rounded again to f32 is the correctly rounded f32
//! result for these operations, so `Sqrt` and `Reciprocal`, which compute in f64, agree with
//! f32 arithmetic); then `x · r` and `· weight` in f32. The f64 sums of eight rows run side by
//! side, each still in its own order (`smelt_kernels::row_sums_of_squares_f64`: eight rows
//! transposed in registers, one per lane, on the x86-64 SIMD tiers).

use crate::error::RuntimeError;
use crate::node::OpCtx;
use crate::value::{Data, Value};

/// Rows whose sums of squares run side by side.
const LANES: usize = 8;

pub(crate) fn rms_norm(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    if x.shape.is_empty() {
        return Err(c.err("axis -1 is out of range for a scalar"));
    }
    let Data::F32(xv) = &x.data else {
        return Err(c.err(format!("operand dtypes differ: {} vs float32", x.dtype())));
    };
    let eps = match &c.input(1)?.data {
        Data::F32(e) if e.len() == 1 => e[0],
        d => {
            return Err(c.err(format!(
                "epsilon must be one float32 value, found {} of {}",
                d.len(),
                d.dtype()
            )))
        }
    };
    let len = x.shape.last().copied().unwrap_or(1);
    let weight: Option<&[f32]> = match c.opt(2) {
        None => None,
        Some(w) => match &w.data {
            Data::F32(v) if v.len() == len || v.len() == 1 => Some(v),
            Data::F32(_) => return Err(c.shape_err("operands do not broadcast", &x.shape, &w.shape)),
            d => return Err(c.err(format!("operand dtypes differ: float32 vs {}", d.dtype()))),
        },
    };
    let mut out = vec![0f32; xv.len()];
    if len > 0 {
        let block = len * LANES;
        super::par::for_rows(xv, &mut out, block, |(xb, ob)| rows(xb, ob, len, eps, weight));
    }
    Ok(vec![Value::new(x.shape.clone(), Data::F32(out))])
}

/// Up to [`LANES`] rows of `len` elements.
fn rows(x: &[f32], out: &mut [f32], len: usize, eps: f32, weight: Option<&[f32]>) {
    let n = x.len() / len;
    let mut sums = [0f64; LANES];
    smelt_kernels::row_sums_of_squares_f64(&x[..n * len], len, &mut sums[..n]);
    for (r, &sum) in sums.iter().enumerate().take(n) {
        let mean = (sum / len as f64) as f32;
        let root = ((mean + eps) as f64).sqrt() as f32;
        let inv = 1.0 / root;
        let (xr, or) = (&x[r * len..(r + 1) * len], &mut out[r * len..(r + 1) * len]);
        match weight {
            Some(w) if w.len() == len => {
                for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
                    *o = g * (v * inv);
                }
            }
            Some(w) => {
                let g = w[0];
                for (o, &v) in or.iter_mut().zip(xr) {
                    *o = g * (v * inv);
                }
            }
            None => {
                for (o, &v) in or.iter_mut().zip(xr) {
                    *o = v * inv;
                }
            }
        }
    }
}
