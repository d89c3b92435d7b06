//! MatMul (numpy semantics: 1-D promotion, broadcast batch dims) and Gemm, computed in f32
//! with smelt-kernels' GEMM; f16/bf16/f64 operands are converted to f32 and the result back.
//! A constant `B` arrives packed ([`crate::prepack`]) and runs `gemm_f32_packed` over all
//! rows of `A` at once.

use super::broadcast::{broadcast_shape, expand, index_map};
use super::shape::reshape_target;
use crate::error::RuntimeError;
use crate::node::{FloatLike, OpCtx};
use crate::prepack::PackedB;
use crate::registry::{Registry, DEFAULT_DOMAIN};
use crate::value::{Data, Value};
use smelt_kernels::PackedF32;

pub(crate) fn register(r: &mut Registry) {
    r.add_prepared(DEFAULT_DOMAIN, "MatMul", 1, i64::MAX, matmul, crate::prepack::prepare_b);
    r.add_prepared(DEFAULT_DOMAIN, "Gemm", 1, i64::MAX, gemm, crate::prepack::prepare_b);
}

/// `a · b` for f32 data with numpy matmul shape rules; returns the output shape and values.
pub(crate) fn matmul_f32(
    c: &OpCtx<'_>,
    a: &[f32],
    ash: &[usize],
    b: &[f32],
    bsh: &[usize],
) -> Result<(Vec<usize>, Vec<f32>), RuntimeError> {
    matmul_f32_t(c, a, ash, b, bsh, false, None)
}

/// [`matmul_f32`], or with `bt` `a · bᵀ` where `bᵀ` swaps `b`'s last two axes (`b` of rank
/// ≥ 2 is `[.., n, k]`): the fused `Transpose → MatMul` of [`crate::fuse`], which reads each
/// batch item's `b` as a Linear weight instead of copying it transposed. With `divisor`, each
/// product is then divided by it in f32 (a fused `Div` by a scalar: the same bits).
fn matmul_f32_t(
    c: &OpCtx<'_>,
    a: &[f32],
    ash: &[usize],
    b: &[f32],
    bsh: &[usize],
    bt: bool,
    divisor: Option<f32>,
) -> Result<(Vec<usize>, Vec<f32>), RuntimeError> {
    if ash.is_empty() || bsh.is_empty() {
        return Err(c.shape_err("MatMul operands must have rank >= 1", ash, bsh));
    }
    let a_vec = ash.len() == 1;
    let b_vec = bsh.len() == 1;
    let ash2: Vec<usize> = if a_vec { vec![1, ash[0]] } else { ash.to_vec() };
    let bsh2: Vec<usize> = if b_vec { vec![bsh[0], 1] } else { bsh.to_vec() };
    let (m, k) = (ash2[ash2.len() - 2], ash2[ash2.len() - 1]);
    let (k2, n) = if bt && !b_vec {
        (bsh2[bsh2.len() - 1], bsh2[bsh2.len() - 2])
    } else {
        (bsh2[bsh2.len() - 2], bsh2[bsh2.len() - 1])
    };
    if k != k2 {
        let what = if bt { "inner dimensions differ (B transposed)" } else { "inner dimensions differ" };
        return Err(c.shape_err(what, ash, bsh));
    }
    let abatch = &ash2[..ash2.len() - 2];
    let bbatch = &bsh2[..bsh2.len() - 2];
    let batch = broadcast_shape(abatch, bbatch)
        .ok_or_else(|| c.shape_err("batch dimensions do not broadcast", ash, bsh))?;
    c.checked_numel(&[batch.as_slice(), &[m, n]].concat())?;
    let ia = index_map(abatch, &batch);
    let ib = index_map(bbatch, &batch);
    // Every batch item's operands (broadcast batch dims index the same one), then all the
    // products in one call: tasks over items and column chunks, divided on the way out.
    let a_items: Vec<&[f32]> = ia.iter().map(|&i| &a[i * m * k..(i + 1) * m * k]).collect();
    let b_items: Vec<&[f32]> = ib.iter().map(|&i| &b[i * k * n..(i + 1) * k * n]).collect();
    let out = smelt_kernels::gemm_f32_batch_vec(m, n, k, &a_items, &b_items, bt, divisor);
    let mut shape = batch;
    if !a_vec {
        shape.push(m);
    }
    if !b_vec {
        shape.push(n);
    }
    Ok((shape, out))
}

fn as_f32<'v>(c: &OpCtx<'_>, v: &'v Value) -> Result<std::borrow::Cow<'v, [f32]>, RuntimeError> {
    match &v.data {
        Data::F32(x) => Ok(std::borrow::Cow::Borrowed(x)),
        d if d.dtype().is_float_like() => Ok(std::borrow::Cow::Owned(d.to_f32_vec())),
        d => Err(c.err(format!("{} needs float operands, found {}", c.node.op_type, d.dtype()))),
    }
}

fn back(c: &OpCtx<'_>, like: &Value, shape: Vec<usize>, v: Vec<f32>) -> Result<Value, RuntimeError> {
    let data = Data::F32(v);
    let data = if like.dtype() == smelt_tensor::DType::F32 {
        data
    } else {
        data.cast(like.dtype()).ok_or_else(|| c.err("cast"))?
    };
    Ok(Value::new(shape, data))
}

/// The f32 `B` prepared at load.
fn packed_f32<'v>(c: &OpCtx<'v>) -> Result<Option<&'v PackedF32>, RuntimeError> {
    match c.prepared::<PackedB>() {
        None => Ok(None),
        Some(PackedB::F32(p)) => Ok(Some(p)),
        Some(PackedB::Int8 { .. }) => Err(c.err("internal: B was packed for another op")),
    }
}

/// `a · B` with `B` packed: every row of `a` (batch dims included) against the same `B`.
fn matmul_packed(c: &OpCtx<'_>, a: &Value, b: &PackedF32) -> Result<Value, RuntimeError> {
    let [k, n] = b.shape();
    if a.shape.last() != Some(&k) {
        return Err(c.shape_err("inner dimensions differ", &a.shape, &[k, n]));
    }
    let av = as_f32(c, a)?;
    let rows: usize = a.shape[..a.shape.len() - 1].iter().product();
    let mut shape = a.shape[..a.shape.len() - 1].to_vec();
    shape.push(n);
    c.checked_numel(&shape)?;
    let out = smelt_kernels::gemm_f32_packed_vec(rows, &av, b);
    back(c, a, shape, out)
}

fn matmul(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let a = c.input(0)?;
    if let Some(p) = packed_f32(c)? {
        return Ok(vec![matmul_packed(c, a, p)?]);
    }
    let b = c.input(1)?;
    let (shape, out) = matmul_f32(c, &as_f32(c, a)?, &a.shape, &as_f32(c, b)?, &b.shape)?;
    Ok(vec![back(c, a, shape, out)?])
}

/// The fused `Transpose(perm swapping the last two axes) → MatMul` as input `B`
/// ([`crate::fuse`]): input 1 is the Transpose's input.
pub(crate) fn matmul_trans_b(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    if b.shape.len() < 2 {
        return Err(c.shape_err("transposed B needs rank >= 2", &a.shape, &b.shape));
    }
    let (shape, out) = matmul_f32_t(c, &as_f32(c, a)?, &a.shape, &as_f32(c, b)?, &b.shape, true, None)?;
    Ok(vec![back(c, a, shape, out)?])
}

/// The fused grouped-query `Unsqueeze(x, axis 2) → Expand(·, to) → Reshape(·, target)` as
/// `B` of a `MatMul` (`trans_b` = 1: of a `MatMulTransB`) ([`crate::fuse`]); inputs `a`, `x`,
/// `to`, `target`. When that chain repeats each of `x`'s heads `rep` times in place — `x`
/// `[b, kv, t, d]`, the Expand giving `[b, kv, rep, t, d]`, the Reshape `[b, kv·rep, t, d]` —
/// and `a` is `[b, kv·rep, s, k]`, the product runs as `a` seen as `[b, kv, rep, s, k]` times
/// `x` seen as `[b, kv, 1, t, d]`: the batch broadcasting hands each query head its key/value
/// head, the same kernel call on the same operands as over the repeated copy, which is never
/// made. Otherwise the chain's value is built as the three ops define it. Input 4, when
/// present, is a one-element f32 divisor of the product (the attention scale's `Div`).
pub(crate) fn matmul_grouped_b(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let (a, x) = (c.input(0)?, c.input(1)?);
    let divisor = match c.opt(4).map(|d| &d.data) {
        None => None,
        Some(Data::F32(d)) if d.len() == 1 => Some(d[0]),
        Some(_) => return Err(c.err("the fused divisor must be one f32 value")),
    };
    let bt = c.int("trans_b", 0) != 0;
    if x.shape.len() < 2 {
        return Err(c.shape_err("Unsqueeze at axis 2 needs rank >= 2", &x.shape, &[]));
    }
    let mut u = x.shape.clone();
    u.insert(2, 1);
    let to: Vec<usize> = c.input_i64s(2)?.iter().map(|&d| d.max(0) as usize).collect();
    let e = broadcast_shape(&u, &to)
        .ok_or_else(|| c.shape_err("input does not broadcast to the shape", &u, &to))?;
    c.checked_numel(&e)?;
    let r = reshape_target(c, &e, &c.input_i64s(3)?, c.int("allowzero", 0) != 0)?;
    let (av, xv) = (as_f32(c, a)?, as_f32(c, x)?);
    let xs = &x.shape;
    let inner_ok = a.shape.len() == 4 && xs.len() == 4 && a.shape[3] == if bt { xs[3] } else { xs[2] };
    let grouped = inner_ok
        && e.len() == 5
        && e[..2] == xs[..2]
        && e[3..] == xs[2..]
        && r == [xs[0], xs[1] * e[2], xs[2], xs[3]]
        && a.shape[..2] == r[..2];
    let (shape, out) = if grouped {
        // The `rep` query heads of a key/value head are contiguous rows of `a`, so they run
        // as one product of `rep·s` rows (`[b, kv, rep·s, k]` times `x`) when that keeps the
        // kernels' arithmetic per row (both counts on the same side of
        // `GEMM_ROWS_REGIME`: decode's one row per head, prefill's many), and as `rep`
        // products of `s` rows (`[b, kv, rep, s, k]` times `[b, kv, 1, t, d]`) otherwise.
        let (rep, s) = (e[2], a.shape[2]);
        let regime = smelt_kernels::GEMM_ROWS_REGIME;
        let (shape, out) = if (s >= regime) == (rep * s >= regime) {
            matmul_f32_t(c, &av, &[xs[0], xs[1], rep * s, a.shape[3]], &xv, xs, bt, divisor)?
        } else {
            matmul_f32_t(c, &av, &[xs[0], xs[1], rep, s, a.shape[3]], &xv, &u, bt, divisor)?
        };
        // Either is `[b, kv·rep, s, n]` in memory.
        (vec![a.shape[0], a.shape[1], s, shape[shape.len() - 1]], out)
    } else {
        let repeated = expand(&xv, &u, &e);
        matmul_f32_t(c, &av, &a.shape, &repeated, &r, bt, divisor)?
    };
    Ok(vec![back(c, a, shape, out)?])
}

fn gemm(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let a = c.input(0)?;
    let packed = packed_f32(c)?;
    let b_shape = match &packed {
        Some(p) => p.shape().to_vec(),
        None => c.input(1)?.shape.clone(),
    };
    if a.shape.len() != 2 || b_shape.len() != 2 {
        return Err(c.shape_err("Gemm needs 2-D A and B", &a.shape, &b_shape));
    }
    let (ta, tb) = (c.int("transA", 0) != 0, c.int("transB", 0) != 0);
    let alpha = c.float("alpha", 1.0);
    let beta = c.float("beta", 1.0);
    let (m, k) = if ta { (a.shape[1], a.shape[0]) } else { (a.shape[0], a.shape[1]) };
    let (k2, n) = if tb { (b_shape[1], b_shape[0]) } else { (b_shape[0], b_shape[1]) };
    if k != k2 {
        return Err(c.shape_err("inner dimensions differ (after transA/transB)", &a.shape, &b_shape));
    }
    c.checked_numel(&[m, n])?;
    let av = as_f32(c, a)?;
    let at: std::borrow::Cow<'_, [f32]> =
        if ta { std::borrow::Cow::Owned(smelt_kernels::transpose(a.shape[0], a.shape[1], &av)) } else { av };
    let mut out = vec![0f32; m * n];
    match packed {
        Some(p) => smelt_kernels::gemm_f32_packed(m, &at, p, &mut out),
        None if tb => smelt_kernels::gemm_f32_bt(m, n, k, &at, &as_f32(c, c.input(1)?)?, &mut out),
        None => smelt_kernels::gemm_f32(m, n, k, &at, &as_f32(c, c.input(1)?)?, &mut out),
    }
    if alpha != 1.0 {
        out.iter_mut().for_each(|x| *x *= alpha);
    }
    if let Some(cv) = c.opt(2) {
        let bias = as_f32(c, cv)?;
        if broadcast_shape(&cv.shape, &[m, n]).as_deref() != Some(&[m, n][..]) {
            return Err(c.shape_err("C does not broadcast to the output", &cv.shape, &[m, n]));
        }
        let idx = index_map(&cv.shape, &[m, n]);
        for (o, i) in out.iter_mut().zip(idx) {
            *o += beta * bias[i];
        }
    }
    Ok(vec![back(c, a, vec![m, n], out)?])
}
