//! ONNX Attention (opset 23+): scaled dot-product attention over 4-D `[batch, heads, seq,
//! head]` or 3-D `[batch, seq, heads·head]` inputs, with grouped-query heads, a past KV cache
//! (present outputs), boolean or additive masks, causal masking aligned bottom-right,
//! sliding windows, `nonpad_kv_seqlen`, softcap and the `qk_matmul_output` modes. Computed in
//! f64 in the order of the ONNX reference implementation (onnx/reference/ops/op_attention.py).

use super::broadcast::index_map;
use super::norm::from_f64;
use crate::error::RuntimeError;
use crate::node::{FloatLike, OpCtx};
use crate::registry::Registry;
use crate::value::{Data, Value};

pub(crate) fn register(r: &mut Registry) {
    r.add("", "Attention", 23, i64::MAX, attention);
}

/// `[b, s, h·e]` → `[b, h, s, e]`.
fn split_heads(v: &[f64], b: usize, s: usize, h: usize, e: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for bi in 0..b {
        for si in 0..s {
            for hi in 0..h {
                for ei in 0..e {
                    out[((bi * h + hi) * s + si) * e + ei] = v[((bi * s + si) * h + hi) * e + ei];
                }
            }
        }
    }
    out
}

/// Concatenates `[b, h, p, e]` and `[b, h, s, e]` along the sequence axis.
fn concat_seq(past: &[f64], cur: &[f64], b: usize, h: usize, p: usize, s: usize, e: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(past.len() + cur.len());
    for bh in 0..b * h {
        out.extend_from_slice(&past[bh * p * e..(bh + 1) * p * e]);
        out.extend_from_slice(&cur[bh * s * e..(bh + 1) * s * e]);
    }
    out
}

fn attention(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let (q, k, v) = (c.input(0)?, c.input(1)?, c.input(2)?);
    if !q.dtype().is_float_like()
        || q.shape.len() != k.shape.len()
        || q.shape.len() != v.shape.len()
        || !matches!(q.shape.len(), 3 | 4)
    {
        return Err(c.shape_err("Q, K, V must be float and all 3-D or all 4-D", &q.shape, &k.shape));
    }
    let three_d = q.shape.len() == 3;
    let b = q.shape[0];
    let (hq, hkv, l, s, e, ev) = if three_d {
        let hq = c.int("q_num_heads", 0).max(0) as usize;
        let hkv = c.int("kv_num_heads", 0).max(0) as usize;
        if hq == 0 || hkv == 0 || q.shape[2] % hq != 0 || v.shape[2] % hkv != 0 {
            return Err(c.err("3-D inputs need q_num_heads and kv_num_heads dividing the hidden sizes"));
        }
        (hq, hkv, q.shape[1], k.shape[1], q.shape[2] / hq, v.shape[2] / hkv)
    } else {
        (q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3])
    };
    // K and V as Q's batch, head counts and sizes imply them (V's head size is its own),
    // checked before the 3-D inputs are split into heads.
    let (want_k, want_v) = if three_d {
        (vec![b, s, hkv * e], vec![b, s, hkv * ev])
    } else {
        (vec![b, hkv, s, e], vec![b, hkv, s, ev])
    };
    if hkv == 0 || hq % hkv != 0 || k.shape != want_k {
        return Err(c.shape_err("K does not match Q (batch, heads, head size)", &k.shape, &want_k));
    }
    if v.shape != want_v {
        return Err(c.shape_err("V does not match K (batch, heads, sequence)", &v.shape, &want_v));
    }
    let (qv, kv, vv) = if three_d {
        (
            split_heads(&q.data.to_f64_vec(), b, l, hq, e),
            split_heads(&k.data.to_f64_vec(), b, s, hkv, e),
            split_heads(&v.data.to_f64_vec(), b, s, hkv, ev),
        )
    } else {
        (q.data.to_f64_vec(), k.data.to_f64_vec(), v.data.to_f64_vec())
    };
    // Past cache.
    let (past_k, past_v) = (c.opt(4), c.opt(5));
    let p = past_k.map_or(0, |pk| pk.shape.get(2).copied().unwrap_or(0));
    let (kv_all, vv_all) = match (past_k, past_v) {
        (Some(pk), Some(pv)) => {
            if pk.shape != [b, hkv, p, e] {
                return Err(c.shape_err(
                    "past_key must be [batch, kv_heads, past, head]",
                    &pk.shape,
                    &[b, hkv, p, e],
                ));
            }
            if pv.shape != [b, hkv, p, ev] {
                return Err(c.shape_err(
                    "past_value must be [batch, kv_heads, past, v_head]",
                    &pv.shape,
                    &[b, hkv, p, ev],
                ));
            }
            (
                concat_seq(&pk.data.to_f64_vec(), &kv, b, hkv, p, s, e),
                concat_seq(&pv.data.to_f64_vec(), &vv, b, hkv, p, s, ev),
            )
        }
        (None, None) => (kv, vv),
        _ => return Err(c.err("past_key and past_value must be given together")),
    };
    let t = p + s;
    let scale = match c.attr("scale") {
        Some(_) => c.float("scale", 1.0) as f64,
        None => 1.0 / (e as f64).sqrt(),
    };
    let softcap = c.float("softcap", 0.0) as f64;
    let is_causal = c.int("is_causal", 0) != 0;
    let mode = c.int("qk_matmul_output_mode", 0);
    let (left, right) = (c.int("left_window_size", -1), c.int("right_window_size", -1));

    // The additive bias, broadcast to [b, hq, l, t].
    let full = [b, hq, l, t];
    let n_full = c.checked_numel(&full)?;
    let mut bias = vec![0f64; n_full];
    let mask = c.opt(3);
    if let Some(m) = mask {
        let ml = *m.shape.last().unwrap_or(&0);
        if ml > t || m.shape.is_empty() {
            return Err(c.shape_err("attn_mask's last dim exceeds the total sequence", &m.shape, &full));
        }
        let vals: Vec<f64> = match &m.data {
            Data::Bool(bv) => bv.iter().map(|&x| if x { 0.0 } else { f64::NEG_INFINITY }).collect(),
            d => d.to_f64_vec(),
        };
        // Pad the last dim to t (False / -inf), then broadcast.
        let rows = vals.len() / ml.max(1);
        let mut padded = Vec::with_capacity(rows * t);
        for r in 0..rows {
            padded.extend_from_slice(&vals[r * ml..(r + 1) * ml]);
            padded.extend(std::iter::repeat_n(f64::NEG_INFINITY, t - ml));
        }
        let mut mshape = m.shape.clone();
        *mshape.last_mut().unwrap_or(&mut 0) = t;
        if super::broadcast::broadcast_shape(&mshape, &full).as_deref() != Some(&full[..]) {
            return Err(c.shape_err(
                "attn_mask does not broadcast to [batch, heads, q, total]",
                &m.shape,
                &full,
            ));
        }
        for (o, i) in bias.iter_mut().zip(index_map(&mshape, &full)) {
            *o = padded[i];
        }
    }
    let nonpad: Option<Vec<i64>> = match c.opt(6) {
        Some(_) => Some(c.input_i64s(6)?),
        None => None,
    };
    if let Some(np) = &nonpad {
        if np.len() != b {
            return Err(c.err("nonpad_kv_seqlen must have one entry per batch"));
        }
    }
    let offset = |bi: usize| -> i64 {
        match &nonpad {
            Some(np) if past_k.is_none() => np[bi] - l as i64,
            _ => p as i64,
        }
    };
    for bi in 0..b {
        for h in 0..hq {
            for i in 0..l {
                for j in 0..t {
                    let at = ((bi * hq + h) * l + i) * t + j;
                    let pos = i as i64 + offset(bi);
                    let j = j as i64;
                    if is_causal && j > pos {
                        bias[at] = f64::NEG_INFINITY;
                    }
                    if (left >= 0 && pos - j > left) || (right >= 0 && j - pos > right) {
                        bias[at] = f64::NEG_INFINITY;
                    }
                    if let Some(np) = &nonpad {
                        if j >= np[bi] {
                            bias[at] = f64::NEG_INFINITY;
                        }
                    }
                }
            }
        }
    }

    let group = hq / hkv;
    c.checked_numel(&[b, hq, l, ev])?;
    let mut y = vec![0f64; b * hq * l * ev];
    let mut qk_out = vec![0f64; n_full];
    let mut scores = vec![0f64; t];
    for bi in 0..b {
        for h in 0..hq {
            let kh = h / group;
            for i in 0..l {
                let qrow = &qv[((bi * hq + h) * l + i) * e..][..e];
                let row = ((bi * hq + h) * l + i) * t;
                for (j, sc) in scores.iter_mut().enumerate() {
                    let krow = &kv_all[((bi * hkv + kh) * t + j) * e..][..e];
                    let mut d = qrow.iter().zip(krow).map(|(a, b)| a * b).sum::<f64>() * scale;
                    if softcap > 0.0 {
                        d = softcap * (d / softcap).tanh();
                    }
                    qk_out[row + j] = d;
                    *sc = d + bias[row + j];
                    if mode == 2 {
                        qk_out[row + j] = *sc;
                    }
                }
                let all_masked = bias[row..row + t].iter().all(|&x| x == f64::NEG_INFINITY);
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let safe = if max == f64::NEG_INFINITY { 0.0 } else { max };
                let ex: Vec<f64> = scores.iter().map(|&x| (x - safe).exp()).collect();
                let sum: f64 = ex.iter().sum();
                let sum = if sum == 0.0 { 1.0 } else { sum };
                let out = &mut y[((bi * hq + h) * l + i) * ev..][..ev];
                for (j, &w) in ex.iter().enumerate() {
                    let w = if all_masked { 0.0 } else { w / sum };
                    if mode == 3 {
                        qk_out[row + j] = w;
                    }
                    let vrow = &vv_all[((bi * hkv + kh) * t + j) * ev..][..ev];
                    for (o, &x) in out.iter_mut().zip(vrow) {
                        *o += w * x;
                    }
                }
            }
        }
    }
    let dt = q.dtype();
    let (y, y_shape) = if three_d {
        // [b, hq, l, ev] -> [b, l, hq·ev]
        let mut o = vec![0f64; y.len()];
        for bi in 0..b {
            for h in 0..hq {
                for i in 0..l {
                    for x in 0..ev {
                        o[((bi * l + i) * hq + h) * ev + x] = y[((bi * hq + h) * l + i) * ev + x];
                    }
                }
            }
        }
        (o, vec![b, l, hq * ev])
    } else {
        (y, vec![b, hq, l, ev])
    };
    Ok(vec![
        Value::new(y_shape, from_f64(c, dt, y)?),
        Value::new(vec![b, hkv, t, e], from_f64(c, dt, kv_all)?),
        Value::new(vec![b, hkv, t, ev], from_f64(c, dt, vv_all)?),
        Value::new(full.to_vec(), from_f64(c, dt, qk_out)?),
    ])
}
