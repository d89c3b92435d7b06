//! Softmax/LogSoftmax and the normalizations (LayerNormalization, BatchNormalization in
//! inference mode), computed in f64 and rounded to the input's float type.

use crate::error::RuntimeError;
use crate::node::{FloatLike, OpCtx};
use crate::registry::Registry;
use crate::value::{Data, Value};

pub(crate) fn register(r: &mut Registry) {
    r.onnx("Softmax", |c| softmax(c, false));
    r.onnx("LogSoftmax", |c| softmax(c, true));
    r.onnx("LayerNormalization", layer_norm);
    r.onnx("BatchNormalization", batch_norm);
    r.onnx("RMSNormalization", rms_norm);
    r.onnx("LpNormalization", lp_norm);
    r.onnx("Hardmax", hardmax);
}

/// (outer, len, inner) around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

fn rms_norm(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let scale = c.input(1)?;
    let axis = c.axis(c.int("axis", -1), x.shape.len())?;
    let eps = c.float("epsilon", 1e-5) as f64;
    let norm_shape = &x.shape[axis..];
    let len: usize = norm_shape.iter().product();
    if super::broadcast::broadcast_shape(&scale.shape, norm_shape).as_deref() != Some(norm_shape) {
        return Err(c.shape_err("scale does not broadcast to the normalized dims", &scale.shape, norm_shape));
    }
    let s = super::broadcast::expand(&floats(c, scale)?, &scale.shape, norm_shape);
    let v = floats(c, x)?;
    let mut out = vec![0f64; v.len()];
    for (o, row) in v.chunks(len.max(1)).enumerate() {
        let ms = row.iter().map(|x| x * x).sum::<f64>() / len as f64;
        let r = 1.0 / (ms + eps).sqrt();
        for j in 0..row.len() {
            out[o * len + j] = row[j] * r * s[j];
        }
    }
    Ok(vec![Value::new(x.shape.clone(), from_f64(c, x.dtype(), out)?)])
}

fn lp_norm(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let axis = c.axis(c.int("axis", -1), x.shape.len())?;
    let p = c.int("p", 2);
    let (outer, len, inner) = around(&x.shape, axis);
    let v = floats(c, x)?;
    let mut out = v.clone();
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * len * inner + j * inner + i;
            let n = if p == 1 {
                (0..len).map(|j| v[at(j)].abs()).sum::<f64>()
            } else {
                (0..len).map(|j| v[at(j)] * v[at(j)]).sum::<f64>().sqrt()
            };
            for j in 0..len {
                out[at(j)] = if n == 0.0 { 0.0 } else { v[at(j)] / n };
            }
        }
    }
    Ok(vec![Value::new(x.shape.clone(), from_f64(c, x.dtype(), out)?)])
}

fn hardmax(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let default_axis = if c.opset() >= 13 { -1 } else { 1 };
    let axis = c.axis(c.int("axis", default_axis), x.shape.len())?;
    let (outer, len, inner) = if c.opset() >= 13 {
        around(&x.shape, axis)
    } else {
        (x.shape[..axis].iter().product(), x.shape[axis..].iter().product(), 1)
    };
    let v = floats(c, x)?;
    let mut out = vec![0f64; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * len * inner + j * inner + i;
            let mut best = 0;
            for j in 1..len {
                if v[at(j)] > v[at(best)] {
                    best = j;
                }
            }
            if len > 0 {
                out[at(best)] = 1.0;
            }
        }
    }
    Ok(vec![Value::new(x.shape.clone(), from_f64(c, x.dtype(), out)?)])
}

fn floats(c: &OpCtx<'_>, v: &Value) -> Result<Vec<f64>, RuntimeError> {
    if !v.dtype().is_float_like() {
        return Err(c.err(format!("needs a float input, found {}", v.dtype())));
    }
    Ok(v.data.to_f64_vec())
}

/// Wraps f64 results back into `dtype`'s data.
pub(crate) fn from_f64(c: &OpCtx<'_>, dtype: smelt_tensor::DType, v: Vec<f64>) -> Result<Data, RuntimeError> {
    Data::F64(v).cast(dtype).ok_or_else(|| c.err(format!("cannot produce {dtype}")))
}

fn softmax(c: &OpCtx<'_>, log: bool) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    let default_axis = if c.opset() >= 13 { -1 } else { 1 };
    let axis = c.axis(c.int("axis", default_axis), rank)?;
    // Opset < 13 normalizes over the flattened dims from `axis` on; 13+ over `axis` alone.
    let (outer, len, inner) = if c.opset() >= 13 {
        (
            x.shape[..axis].iter().product::<usize>(),
            x.shape.get(axis).copied().unwrap_or(1),
            x.shape[axis + 1..].iter().product::<usize>(),
        )
    } else {
        (x.shape[..axis].iter().product::<usize>(), x.shape[axis..].iter().product::<usize>(), 1)
    };
    if let (Data::F32(v), 1) = (&x.data, inner) {
        return Ok(vec![Value::new(x.shape.clone(), Data::F32(softmax_rows_f32(v, len, log)))]);
    }
    let v = floats(c, x)?;
    let mut out = vec![0f64; v.len()];
    let mut e = vec![0f64; len];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * len * inner + j * inner + i;
            let max = (0..len).map(|j| v[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            for (j, e) in e.iter_mut().enumerate() {
                *e = (v[at(j)] - max).exp();
            }
            let sum = lane_sum(&e);
            for j in 0..len {
                out[at(j)] = if log { v[at(j)] - max - sum.ln() } else { (v[at(j)] - max).exp() / sum };
            }
        }
    }
    Ok(vec![Value::new(x.shape.clone(), from_f64(c, x.dtype(), out)?)])
}

/// Σ `e` in a fixed order that vectorizes: eight running sums over the elements (element `j`
/// into sum `j mod 8`), then added pairwise. The general and the f32 path both use it, so
/// they give the same bits; a single running sum was a chain of dependent additions that took
/// most of a softmax row's time.
fn lane_sum(e: &[f64]) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = e.chunks_exact(8);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    for (a, &x) in acc.iter_mut().zip(it.remainder()) {
        *a += x;
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// The maximum of `x` as f64 (NaN skipped, as `f64::max` does), kept per lane so that it
/// vectorizes: exact, so the same value in any order.
fn row_max(x: &[f32]) -> f64 {
    let mut m = [f32::NEG_INFINITY; 16];
    let mut it = x.chunks_exact(16);
    for c in &mut it {
        for (m, &v) in m.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    for (m, &v) in m.iter_mut().zip(it.remainder()) {
        *m = if v > *m { v } else { *m };
    }
    m.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64))
}

thread_local! {
    /// A softmax row's exponentials, kept per thread from row to row.
    static EXPS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Softmax (or log-softmax) of each contiguous row of `len` f32 values, computed in f64 as
/// the general path does (the same operations in the same order, so the same bits), each
/// exponential once; rows are shared out over the thread pool when there are many.
fn softmax_rows_f32(v: &[f32], len: usize, log: bool) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    if len == 0 {
        return out;
    }
    let row = |(x, o): (&[f32], &mut [f32])| {
        EXPS.with_borrow_mut(|buf| {
            let max = row_max(x);
            // Thousands of attention rows (a few hundred scores) per run share one buffer per
            // thread: allocated per row, it took a tenth of the op's time; an 8 KiB array on
            // the stack, zeroed for every row whatever its length, a fifth (one [1, 16, 128,
            // 128] Softmax, one thread of the AVX2 machine: 1.25–1.6 ms against 1.0–1.06).
            if buf.len() < x.len() {
                buf.resize(x.len(), 0f64);
            }
            let e = &mut buf[..x.len()];
            smelt_kernels::exp_shifted_f64(x, max, e);
            let sum = lane_sum(e);
            if log {
                let ls = sum.ln();
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = (x as f64 - max - ls) as f32;
                }
            } else {
                for (o, &e) in o.iter_mut().zip(e.iter()) {
                    *o = (e / sum) as f32;
                }
            }
        })
    };
    super::par::for_rows(v, &mut out, len, row);
    out
}

fn layer_norm(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let scale = c.input(1)?;
    let rank = x.shape.len();
    let axis = c.axis(c.int("axis", -1), rank)?;
    let eps = c.float("epsilon", 1e-5) as f64;
    let outer: usize = x.shape[..axis].iter().product();
    let norm_shape = &x.shape[axis..];
    let len: usize = norm_shape.iter().product();
    let v = floats(c, x)?;
    let expand = |t: &Value| -> Result<Vec<f64>, RuntimeError> {
        let f = floats(c, t)?;
        if super::broadcast::broadcast_shape(&t.shape, norm_shape).as_deref() != Some(norm_shape) {
            return Err(c.shape_err(
                "scale/bias do not broadcast to the normalized dims",
                &t.shape,
                norm_shape,
            ));
        }
        Ok(super::broadcast::expand(&f, &t.shape, norm_shape))
    };
    let s = expand(scale)?;
    let b = match c.opt(2) {
        Some(bias) => expand(bias)?,
        None => vec![0.0; len],
    };
    let mut out = vec![0f64; v.len()];
    let mut means = Vec::with_capacity(outer);
    let mut inv = Vec::with_capacity(outer);
    for o in 0..outer {
        let row = &v[o * len..(o + 1) * len];
        let mean = row.iter().sum::<f64>() / len as f64;
        let var = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / len as f64;
        let r = 1.0 / (var + eps).sqrt();
        for j in 0..len {
            out[o * len + j] = (row[j] - mean) * r * s[j] + b[j];
        }
        means.push(mean);
        inv.push(r);
    }
    let mut stat_shape = x.shape.clone();
    for d in stat_shape.iter_mut().skip(axis) {
        *d = 1;
    }
    let stash = match c.int("stash_type", 1) {
        1 => smelt_tensor::DType::F32,
        _ => x.dtype(),
    };
    Ok(vec![
        Value::new(x.shape.clone(), from_f64(c, x.dtype(), out)?),
        Value::new(stat_shape.clone(), from_f64(c, stash, means)?),
        Value::new(stat_shape, from_f64(c, stash, inv)?),
    ])
}

fn batch_norm(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    if c.int("training_mode", 0) != 0 {
        return Err(c.err("training_mode=1 is not supported (inference only)"));
    }
    let eps = c.float("epsilon", 1e-5) as f64;
    let v = floats(c, x)?;
    let get = |i: usize| -> Result<Vec<f64>, RuntimeError> { floats(c, c.input(i)?) };
    let (scale, bias, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
    if x.shape.len() < 2 {
        return Err(c.err("input must have rank >= 2"));
    }
    let ch = x.shape[1];
    for t in [&scale, &bias, &mean, &var] {
        if t.len() != ch {
            return Err(c.shape_err("per-channel parameters must have C elements", &[t.len()], &x.shape));
        }
    }
    let inner: usize = x.shape[2..].iter().product();
    let out: Vec<f64> = v
        .iter()
        .enumerate()
        .map(|(i, &e)| {
            let k = (i / inner) % ch;
            (e - mean[k]) / (var[k] + eps).sqrt() * scale[k] + bias[k]
        })
        .collect();
    Ok(vec![Value::new(x.shape.clone(), from_f64(c, x.dtype(), out)?)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_max_is_the_fold_of_f64_max() {
        let rows: Vec<Vec<f32>> = vec![
            vec![],
            vec![-3.0],
            (0..37).map(|i| ((i * 17) % 23) as f32 - 11.0).collect(),
            vec![f32::NAN, -1.0, f32::NAN, -5.0],
            vec![f32::NEG_INFINITY; 20],
            (0..100).map(|i| if i == 63 { f32::INFINITY } else { -(i as f32) }).collect(),
        ];
        for r in rows {
            let want = r.iter().map(|&e| e as f64).fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(row_max(&r).to_bits(), want.to_bits(), "{r:?}");
        }
    }

    #[test]
    fn lane_sum_adds_every_element_once() {
        for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 128, 1000] {
            // Integers: exact in any order, so any lost or repeated element shows.
            let e: Vec<f64> = (0..n).map(|i| (i * i % 97) as f64).collect();
            assert_eq!(lane_sum(&e), e.iter().sum::<f64>(), "n {n}");
        }
    }

    /// The f32 rows give the general path's values: `exp(x - max) / Σ` in f64 with libm's
    /// `exp`, rounded; rows longer and then shorter than the ones before, so the thread's
    /// buffer grows and is reused with an earlier row's exponentials past the row's end.
    #[test]
    fn f32_rows_equal_the_f64_definition_whatever_came_before() {
        for len in [1usize, 7, 128, 1023, 1024, 1025, 3000, 1024, 128, 7, 1] {
            let rows = 3;
            let v: Vec<f32> = (0..rows * len).map(|i| ((i * 7919) % 1009) as f32 * 0.01 - 5.0).collect();
            for log in [false, true] {
                let got = softmax_rows_f32(&v, len, log);
                for (r, (x, g)) in v.chunks(len).zip(got.chunks(len)).enumerate() {
                    let max = x.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
                    let e: Vec<f64> = x.iter().map(|&t| (t as f64 - max).exp()).collect();
                    let sum = lane_sum(&e);
                    for (j, (&t, &g)) in x.iter().zip(g).enumerate() {
                        let want = if log { (t as f64 - max - sum.ln()) as f32 } else { (e[j] / sum) as f32 };
                        assert_eq!(g.to_bits(), want.to_bits(), "len {len} row {r} element {j} log {log}");
                    }
                }
            }
        }
    }
}
