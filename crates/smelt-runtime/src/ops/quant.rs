//! ONNX quantization ops: QuantizeLinear / DequantizeLinear (per-tensor, per-axis, and
//! blocked with `block_size` from opset 21; int8/uint8/int16/uint16/int4/uint4/int32),
//! DynamicQuantizeLinear, MatMulInteger and QLinearMatMul.
//!
//! Rounding is round-half-to-even of `x / scale` computed in f32, then saturation, as the ONNX
//! reference implementation and ONNX Runtime do.

use smelt_kernels::{Int8Matrix, ZeroPoints};
use smelt_tensor::DType;

use super::broadcast::{broadcast_shape, index_map};
use super::norm::from_f64;
use crate::error::RuntimeError;
use crate::node::{FloatLike, OpCtx};
use crate::prepack::PackedB;
use crate::registry::{Registry, DEFAULT_DOMAIN};
use crate::value::{Data, Value};

pub(crate) fn register(r: &mut Registry) {
    r.onnx("QuantizeLinear", quantize_linear);
    r.onnx("DequantizeLinear", dequantize_linear);
    r.onnx("DynamicQuantizeLinear", dynamic_quantize_linear);
    r.add_prepared(DEFAULT_DOMAIN, "MatMulInteger", 1, i64::MAX, matmul_integer, crate::prepack::prepare_b);
    r.onnx("QLinearMatMul", qlinear_matmul);
}

/// Round half to even, in a form that vectorizes (smelt-quant's, shared with the converters).
pub(crate) use smelt_quant::rounding::round_half_even as round_even;

fn range_of(c: &OpCtx<'_>, d: DType) -> Result<(f32, f32), RuntimeError> {
    Ok(match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::U4 => (0.0, 15.0),
        DType::I4 => (-8.0, 7.0),
        DType::I32 => (i32::MIN as f32, i32::MAX as f32),
        d => return Err(c.err(format!("quantized type {d} is not supported"))),
    })
}

/// For every element of `x_shape`, the index of its scale / zero point (shape `p_shape`):
/// per-tensor (one element), per-axis (1-D along `axis`) or blocked (same rank, `axis` dim
/// divided into blocks of `block`).
fn param_index(
    c: &OpCtx<'_>,
    x_shape: &[usize],
    p_shape: &[usize],
    axis: i64,
    block: i64,
) -> Result<Vec<usize>, RuntimeError> {
    let n: usize = x_shape.iter().product();
    let pn: usize = p_shape.iter().product();
    if pn == 1 {
        return Ok(vec![0; n]);
    }
    let rank = x_shape.len();
    let axis = c.axis(axis, rank)?;
    if block > 0 {
        let b = block as usize;
        if p_shape.len() != rank
            || (0..rank).any(|d| {
                if d == axis {
                    p_shape[d] != x_shape[d].div_ceil(b)
                } else {
                    p_shape[d] != x_shape[d]
                }
            })
        {
            return Err(c.shape_err(
                "blocked scale shape does not match the input and block_size",
                x_shape,
                p_shape,
            ));
        }
        let inner: usize = x_shape[axis + 1..].iter().product();
        let dim = x_shape[axis];
        let pdim = p_shape[axis];
        return Ok((0..n)
            .map(|i| {
                let (outer, rest) = (i / (dim * inner), i % (dim * inner));
                let (a, inn) = (rest / inner, rest % inner);
                (outer * pdim + a / b) * inner + inn
            })
            .collect());
    }
    if p_shape.len() != 1 || p_shape[0] != x_shape[axis] {
        return Err(c.shape_err("per-axis scale must be 1-D with the axis' length", x_shape, p_shape));
    }
    let inner: usize = x_shape[axis + 1..].iter().product();
    let dim = x_shape[axis];
    Ok((0..n).map(|i| (i / inner) % dim).collect())
}

fn quantize_linear(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let scale = c.input(1)?;
    let zp = c.opt(2);
    let out_dtype = match zp {
        Some(z) => z.dtype(),
        None => match c.int("output_dtype", 0) {
            0 => DType::U8,
            id => match smelt_formats::onnx::map_data_type(id as i32) {
                smelt_formats::onnx::Mapped::DType(d) => d,
                _ => return Err(c.err(format!("output_dtype {id} is not supported"))),
            },
        },
    };
    let (lo, hi) = range_of(c, out_dtype)?;
    let axis = c.int("axis", 1);
    let block = c.int("block_size", 0);
    let si = param_index(c, &x.shape, &scale.shape, axis, block)?;
    let sv = scale.data.to_f32_vec();
    let zv = zp.map(|z| z.data.to_f32_vec()).unwrap_or_else(|| vec![0.0]);
    let zi = match zp {
        Some(z) => param_index(c, &x.shape, &z.shape, axis, block)?,
        None => vec![0; x.numel()],
    };
    let xv = x.data.to_f32_vec();
    let q: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let r = round_even(v / sv[si[i]]) + zv[zi[i]];
            if r.is_nan() {
                0.0
            } else {
                r.clamp(lo, hi) as f64
            }
        })
        .collect();
    let data = Data::F64(q).cast(out_dtype).ok_or_else(|| c.err("cast"))?;
    Ok(vec![Value::new(x.shape.clone(), data)])
}

fn dequantize_linear(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let scale = c.input(1)?;
    let zp = c.opt(2);
    if x.dtype().is_float_like() {
        return Err(c.err(format!("input must be quantized integers, found {}", x.dtype())));
    }
    let axis = c.int("axis", 1);
    let block = c.int("block_size", 0);
    let si = param_index(c, &x.shape, &scale.shape, axis, block)?;
    let sv = scale.data.to_f32_vec();
    let (zv, zi) = match zp {
        Some(z) => (z.data.to_f32_vec(), param_index(c, &x.shape, &z.shape, axis, block)?),
        None => (vec![0.0], vec![0; x.numel()]),
    };
    let xv = x.data.to_f64_vec();
    let out: Vec<f64> =
        xv.iter().enumerate().map(|(i, &q)| ((q as f32 - zv[zi[i]]) * sv[si[i]]) as f64).collect();
    Ok(vec![Value::new(x.shape.clone(), from_f64(c, scale.dtype(), out)?)])
}

fn dynamic_quantize_linear(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let xv: std::borrow::Cow<'_, [f32]> = match &x.data {
        Data::F32(v) => std::borrow::Cow::Borrowed(v),
        d => std::borrow::Cow::Owned(d.to_f32_vec()),
    };
    let mut q = vec![0u8; xv.len()];
    let (scale, zp) = smelt_kernels::dynamic_quantize_u8(&xv, &mut q);
    Ok(vec![
        Value::new(x.shape.clone(), Data::U8(q)),
        Value::f32(vec![], vec![scale]),
        Value::new(vec![], Data::U8(vec![zp])),
    ])
}

/// Zero points of one MatMulInteger operand: scalar, or one per row (`A`, length `m`) / per
/// column (`B`, length `n`).
fn zero_points(
    c: &OpCtx<'_>,
    z: Option<&Value>,
    per: usize,
) -> Result<(Option<i32>, Vec<i32>), RuntimeError> {
    match z {
        None => Ok((Some(0), Vec::new())),
        Some(z) if z.numel() == 1 => Ok((Some(z.data.to_i64_vec()[0] as i32), Vec::new())),
        Some(z) if z.numel() == per => {
            Ok((None, z.data.to_i64_vec().into_iter().map(|v| v as i32).collect()))
        }
        Some(z) => Err(c.shape_err("zero point must be a scalar or one per row/column", &z.shape, &[per])),
    }
}

fn int8<'v>(c: &OpCtx<'_>, v: &'v Value) -> Result<Int8Matrix<'v>, RuntimeError> {
    match &v.data {
        Data::U8(x) => Ok(Int8Matrix::U8(x)),
        Data::I8(x) => Ok(Int8Matrix::I8(x)),
        d => Err(c.err(format!("operand must be int8 or uint8, found {}", d.dtype()))),
    }
}

/// Elements `off..off + len` of an 8-bit matrix.
fn sub(mx: Int8Matrix<'_>, off: usize, len: usize) -> Int8Matrix<'_> {
    match mx {
        Int8Matrix::U8(v) => Int8Matrix::U8(&v[off..off + len]),
        Int8Matrix::I8(v) => Int8Matrix::I8(&v[off..off + len]),
    }
}

/// Batched `(A - za)·(B - zb)` in i32 with numpy matmul shapes; `A`/`B` rank >= 2 after
/// promotion of 1-D operands.
fn integer_product(
    c: &OpCtx<'_>,
    a: &Value,
    az: Option<&Value>,
    b: &Value,
    bz: Option<&Value>,
) -> Result<(Vec<usize>, Vec<i32>), RuntimeError> {
    if a.shape.is_empty() || b.shape.is_empty() {
        return Err(c.shape_err("operands must have rank >= 1", &a.shape, &b.shape));
    }
    let ash: Vec<usize> = if a.shape.len() == 1 { vec![1, a.shape[0]] } else { a.shape.clone() };
    let bsh: Vec<usize> = if b.shape.len() == 1 { vec![b.shape[0], 1] } else { b.shape.clone() };
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    if k != k2 {
        return Err(c.shape_err("inner dimensions differ", &a.shape, &b.shape));
    }
    let (abatch, bbatch) = (&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]);
    let batch = broadcast_shape(abatch, bbatch)
        .ok_or_else(|| c.shape_err("batch dimensions do not broadcast", &a.shape, &b.shape))?;
    // A's rows times B's columns (times both batches): a product over two values.
    let mut full = batch.clone();
    full.extend([m, n]);
    c.checked_numel(&full)?;
    let (az_s, az_v) = zero_points(c, az, m)?;
    let (bz_s, bz_v) = zero_points(c, bz, n)?;
    let za = az_s.map_or(ZeroPoints::PerIndex(&az_v), ZeroPoints::PerTensor);
    let zb = bz_s.map_or(ZeroPoints::PerIndex(&bz_v), ZeroPoints::PerTensor);
    let (am, bm) = (int8(c, a)?, int8(c, b)?);
    let nb: usize = batch.iter().product();
    let ia = index_map(abatch, &batch);
    let ib = index_map(bbatch, &batch);
    let mut out = vec![0i32; nb * m * n];
    for bi in 0..nb {
        let aa = sub(am, ia[bi] * m * k, m * k);
        let bb = sub(bm, ib[bi] * k * n, k * n);
        smelt_kernels::matmul_integer(m, n, k, aa, za, bb, zb, &mut out[bi * m * n..(bi + 1) * m * n]);
    }
    let mut shape = batch;
    if a.shape.len() > 1 {
        shape.push(m);
    }
    if b.shape.len() > 1 {
        shape.push(n);
    }
    Ok((shape, out))
}

/// `(A - za)·(B - zb)` with `B` packed at load ([`crate::prepack`]): a per-tensor `za` runs
/// every row of `A` (batch dims included) in one call, a per-row one each batch.
fn integer_product_packed(
    c: &OpCtx<'_>,
    a: &Value,
    az: Option<&Value>,
    packed: &PackedB,
    bz: Option<&Value>,
) -> Result<(Vec<usize>, Vec<i32>), RuntimeError> {
    let PackedB::Int8(b) = packed else { return Err(c.err("internal: B was packed for another op")) };
    let [k, n] = b.shape();
    if a.shape.last() != Some(&k) {
        return Err(c.shape_err("inner dimensions differ", &a.shape, &[k, n]));
    }
    let m = if a.shape.len() >= 2 { a.shape[a.shape.len() - 2] } else { 1 };
    let rows: usize = a.shape[..a.shape.len() - 1].iter().product();
    let mut shape = a.shape[..a.shape.len() - 1].to_vec();
    shape.push(n);
    c.checked_numel(&shape)?;
    let (az_s, az_v) = zero_points(c, az, m)?;
    let (bz_s, bz_v) = zero_points(c, bz, n)?;
    let za = az_s.map_or(ZeroPoints::PerIndex(&az_v), ZeroPoints::PerTensor);
    let zb = bz_s.map_or(ZeroPoints::PerIndex(&bz_v), ZeroPoints::PerTensor);
    let am = int8(c, a)?;
    let block = if az_s.is_some() { rows } else { m };
    let mut out = vec![0i32; rows * n];
    if block > 0 && n > 0 {
        for (bi, o) in out.chunks_mut(block * n).enumerate() {
            smelt_kernels::matmul_integer_packed(block, sub(am, bi * block * k, block * k), za, b, zb, o);
        }
    }
    Ok((shape, out))
}

/// `MatMulInteger`'s product (inputs 0-3), from the packed `B` when there is one.
fn integer_matmul(c: &OpCtx<'_>) -> Result<(Vec<usize>, Vec<i32>), RuntimeError> {
    let a = c.input(0)?;
    match c.prepared::<PackedB>() {
        Some(p) => integer_product_packed(c, a, c.opt(2), p, c.opt(3)),
        None => integer_product(c, a, c.opt(2), c.input(1)?, c.opt(3)),
    }
}

fn matmul_integer(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let (shape, out) = integer_matmul(c)?;
    Ok(vec![Value::new(shape, Data::I32(out))])
}

/// The fused `MatMulInteger → Cast(to float) → Mul(·, scale)` ([`crate::fuse`]): inputs 0-3
/// are `MatMulInteger`'s, input 4 the scale. Each output is `f32(acc) · scale`, the same
/// single roundings as the three nodes (i32 → f32 to nearest; an f32 product, which `Mul`
/// computes exactly in f64 and rounds once), without the two intermediate tensors.
pub(crate) fn matmul_integer_scaled(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    if let Some(v) = scaled_packed(c)? {
        return Ok(vec![v]);
    }
    let (shape, acc) = integer_matmul(c)?;
    let s = c.input(4)?;
    let Data::F32(sv) = &s.data else {
        return Err(c.err(format!("operand dtypes differ: float32 vs {}", s.dtype())));
    };
    let out = super::broadcast::broadcast_shape(&shape, &s.shape)
        .ok_or_else(|| c.shape_err("operands do not broadcast", &shape, &s.shape))?;
    let lead_ones = s.shape.iter().take_while(|&&d| d == 1).count();
    if out == shape && sv.len() == 1 {
        let q = sv[0];
        return Ok(vec![Value::new(out, Data::F32(super::par::map(&acc, |x| x as f32 * q)))]);
    }
    if out == shape && !sv.is_empty() && lead_ones < s.shape.len() && out.ends_with(&s.shape[lead_ones..]) {
        let mut o = vec![0f32; acc.len()];
        super::par::for_rows(&acc, &mut o, sv.len(), |(xr, or)| {
            for ((o, &x), &q) in or.iter_mut().zip(xr).zip(sv) {
                *o = x as f32 * q;
            }
        });
        return Ok(vec![Value::new(out, Data::F32(o))]);
    }
    let accf = Value::new(shape, Data::F32(acc.iter().map(|&x| x as f32).collect()));
    Ok(vec![super::elementwise::binary_values(c, &accf, s, |x, y| x * y, i64::wrapping_mul)?])
}

/// [`matmul_integer_scaled`] in one kernel call when `B` is packed, `A`'s zero point is one
/// value (as `DynamicQuantizeLinear` gives) and the scale is one value or one per column
/// (`[n]`, any leading 1s): the scaling happens as each block of columns is finished
/// ([`smelt_kernels::matmul_integer_packed_scaled`], the same roundings). `None` otherwise.
fn scaled_packed(c: &OpCtx<'_>) -> Result<Option<Value>, RuntimeError> {
    let Some(PackedB::Int8(b)) = c.prepared::<PackedB>() else { return Ok(None) };
    let (a, s) = (c.input(0)?, c.input(4)?);
    let [k, n] = b.shape();
    let Data::F32(sv) = &s.data else { return Ok(None) };
    let per_column =
        sv.len() == n && s.shape.last() == Some(&n) && s.shape.iter().rev().skip(1).all(|&d| d == 1);
    let scalar = sv.len() == 1 && s.shape.iter().all(|&d| d == 1);
    // The output keeps A's shape (with n last) only when the scale adds no dimensions.
    if !(per_column || scalar) || s.shape.len() > a.shape.len().max(1) || a.shape.last() != Some(&k) {
        return Ok(None);
    }
    let za = match c.opt(2) {
        None => 0,
        Some(z) if z.numel() == 1 => z.data.to_i64_vec()[0] as i32,
        Some(_) => return Ok(None),
    };
    let (bz_s, bz_v) = zero_points(c, c.opt(3), n)?;
    let zb = bz_s.map_or(ZeroPoints::PerIndex(&bz_v), ZeroPoints::PerTensor);
    let rows: usize = a.shape[..a.shape.len() - 1].iter().product();
    let mut shape = a.shape[..a.shape.len() - 1].to_vec();
    shape.push(n);
    c.checked_numel(&shape)?;
    let out = smelt_kernels::matmul_integer_packed_scaled_vec(
        rows,
        int8(c, a)?,
        ZeroPoints::PerTensor(za),
        b,
        zb,
        sv,
    );
    Ok(Some(Value::new(shape, Data::F32(out))))
}

fn qlinear_matmul(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let a = c.input(0)?;
    let b = c.input(3)?;
    let (shape, acc) = integer_product(c, a, c.opt(2), b, c.opt(5))?;
    let a_s = c.input(1)?.data.to_f32_vec();
    let b_s = c.input(4)?.data.to_f32_vec();
    let y_s = c.input(6)?.data.to_f32_vec();
    let y_z = c.input(7)?;
    let (lo, hi) = range_of(c, y_z.dtype())?;
    let yz = y_z.data.to_f32_vec();
    if a_s.len() != 1 || y_s.len() != 1 || yz.len() != 1 {
        return Err(c.err("a_scale, y_scale and y_zero_point must be scalars"));
    }
    let n = *shape.last().unwrap_or(&1);
    if b_s.len() != 1 && b_s.len() != n {
        return Err(c.shape_err("b_scale must be a scalar or one per column", &[b_s.len()], &shape));
    }
    let q: Vec<f64> = acc
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let bs = if b_s.len() == 1 { b_s[0] } else { b_s[i % n] };
            let m = (a_s[0] as f64 * bs as f64 / y_s[0] as f64) as f32;
            (round_even(v as f32 * m) + yz[0]).clamp(lo, hi) as f64
        })
        .collect();
    let data = Data::F64(q).cast(y_z.dtype()).ok_or_else(|| c.err("cast"))?;
    Ok(vec![Value::new(shape, data)])
}

#[cfg(test)]
mod tests {
    use super::round_even;

    #[test]
    fn round_even_equals_round_ties_even() {
        let mut cases = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.49999997,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            16_777_215.0,
            1e30,
        ];
        cases.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
        ]);
        // Every tie and its neighbours up to 2^12, and a sweep of bit patterns.
        for i in 0..8192 {
            let h = i as f32 + 0.5;
            let (up, down) = (f32::from_bits(h.to_bits() + 1), f32::from_bits(h.to_bits() - 1));
            cases.extend([h, -h, up, down, -up, -down]);
        }
        cases.extend((0..200_000u32).map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761))));
        for x in cases {
            let (got, want) = (round_even(x), x.round_ties_even());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x}: {got} vs {want}"
            );
        }
    }
}
