//! `SwiGlu`, the load-time fusion ([`crate::fuse`]) of the gated SiLU that
//! `torch.onnx.export` writes for Llama-family MLPs: `Sigmoid(g) → Mul(g, ·)`, then
//! optionally `Mul(·, up)`. Inputs: `g`, and `up` when the second product is fused.
//!
//! f32 operands of one shape run in one pass over chunks of 1024 elements: `σ(g)` by the
//! `Sigmoid` op's own kernel on the same chunks, then `g · σ` and `· up` in f32, as the `Mul`
//! op computes them, so the bits are the graph's. Anything else (another type, broadcasting)
//! runs the three ops' own functions in turn.

use crate::error::RuntimeError;
use crate::node::OpCtx;
use crate::value::{Data, Value};

use super::unary::SIGMOID_CHUNK;

pub(crate) fn swiglu(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let g = c.input(0)?;
    let up = c.opt(1);
    if let Data::F32(gv) = &g.data {
        let uv = match up.map(|u| (&u.data, &u.shape)) {
            None => None,
            Some((Data::F32(u), shape)) if *shape == g.shape => Some(u.as_slice()),
            Some(_) => return general(c, g, up),
        };
        let mut out = vec![0f32; gv.len()];
        super::par::for_rows(gv, &mut out, SIGMOID_CHUNK, |(x, o)| {
            smelt_kernels::sigmoid_f32(x, o);
            for (o, &v) in o.iter_mut().zip(x) {
                *o *= v;
            }
            if let Some(u) = uv {
                // The chunk's offset in `g` (chunks are whole multiples of SIGMOID_CHUNK).
                let at = (x.as_ptr() as usize - gv.as_ptr() as usize) / size_of::<f32>();
                for (o, &w) in o.iter_mut().zip(&u[at..at + x.len()]) {
                    *o *= w;
                }
            }
        });
        return Ok(vec![Value::new(g.shape.clone(), Data::F32(out))]);
    }
    general(c, g, up)
}

/// The three ops one after the other.
fn general(c: &OpCtx<'_>, g: &Value, up: Option<&Value>) -> Result<Vec<Value>, RuntimeError> {
    let s = super::unary::sigmoid_value(c, g)?;
    let silu = super::elementwise::mul_values(c, g, &s)?;
    Ok(vec![match up {
        Some(u) => super::elementwise::mul_values(c, &silu, u)?,
        None => silu,
    }])
}
