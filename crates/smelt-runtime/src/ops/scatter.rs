//! Scatter-style and padding ops: ScatterND, ScatterElements (reduction none/add/mul/max/min),
//! OneHot, Pad (constant, reflect, edge, wrap).

use crate::error::RuntimeError;
use crate::map_data;
use crate::node::OpCtx;
use crate::registry::Registry;
use crate::value::{Data, Elem, Value};

pub(crate) fn register(r: &mut Registry) {
    r.onnx("ScatterND", scatter_nd);
    r.onnx("ScatterElements", scatter_elements);
    r.onnx("OneHot", one_hot);
    r.onnx("Pad", pad);
}

fn combine<T: Elem>(mode: &str, old: T, new: T) -> T {
    match mode {
        "add" => T::from_f64(old.to_f64() + new.to_f64()),
        "mul" => T::from_f64(old.to_f64() * new.to_f64()),
        "max" => {
            if new > old {
                new
            } else {
                old
            }
        }
        "min" => {
            if new < old {
                new
            } else {
                old
            }
        }
        _ => new,
    }
}

fn fix(c: &OpCtx<'_>, i: i64, dim: usize) -> Result<usize, RuntimeError> {
    let j = if i < 0 { i + dim as i64 } else { i };
    if j < 0 || j >= dim as i64 {
        return Err(c.err(format!("index {i} out of range for a dim of {dim}")));
    }
    Ok(j as usize)
}

fn scatter_nd(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let iv = c.input(1)?;
    let upd = c.input(2)?;
    let mode = c.string("reduction", "none");
    let k = *iv.shape.last().ok_or_else(|| c.err("indices must have rank >= 1"))?;
    if k > x.shape.len() || upd.dtype() != x.dtype() {
        return Err(c.shape_err("indices do not fit the data", &x.shape, &iv.shape));
    }
    let idx = c.input_i64s(1)?;
    let slice: usize = x.shape[k..].iter().product();
    let mut offs = Vec::new();
    for t in idx.chunks(k.max(1)) {
        let mut off = 0;
        for (j, &i) in t.iter().enumerate() {
            off = off * x.shape[j] + fix(c, i, x.shape[j])?;
        }
        offs.push(off * slice);
    }
    if upd.numel() != offs.len() * slice {
        return Err(c.shape_err("updates do not match indices", &upd.shape, &iv.shape));
    }
    let mut data = x.data.clone();
    macro_rules! go {
        ($($var:ident),*) => {
            match (&mut data, &upd.data) {
                $((Data::$var(d), Data::$var(u)) => {
                    for (t, &o) in offs.iter().enumerate() {
                        for e in 0..slice {
                            d[o + e] = combine(&mode, d[o + e], u[t * slice + e]);
                        }
                    }
                })*
                _ => return Err(c.err("unsupported dtype")),
            }
        };
    }
    go!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool);
    Ok(vec![Value::new(x.shape.clone(), data)])
}

fn scatter_elements(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let iv = c.input(1)?;
    let upd = c.input(2)?;
    let mode = c.string("reduction", "none");
    let rank = x.shape.len();
    let axis = c.axis(c.int("axis", 0), rank)?;
    if iv.shape != upd.shape || iv.shape.len() != rank || upd.dtype() != x.dtype() {
        return Err(c.shape_err(
            "indices and updates must have the same shape and the data's rank",
            &iv.shape,
            &upd.shape,
        ));
    }
    // Off the axis an index's coordinate is its own position, so it must lie inside the data.
    if (0..rank).any(|d| d != axis && iv.shape[d] > x.shape[d]) {
        return Err(c.shape_err("indices exceed the data off the axis", &x.shape, &iv.shape));
    }
    let idx = c.input_i64s(1)?;
    let mut xs = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        xs[d] = xs[d + 1] * x.shape[d + 1];
    }
    let mut dst = Vec::with_capacity(idx.len());
    for (lin, &i) in idx.iter().enumerate() {
        let mut rem = lin;
        let mut off = 0;
        for d in (0..rank).rev() {
            let coord = rem % iv.shape[d];
            rem /= iv.shape[d];
            let coord = if d == axis { fix(c, i, x.shape[d])? } else { coord };
            off += coord * xs[d];
        }
        dst.push(off);
    }
    let mut data = x.data.clone();
    macro_rules! go {
        ($($var:ident),*) => {
            match (&mut data, &upd.data) {
                $((Data::$var(d), Data::$var(u)) => {
                    for (t, &o) in dst.iter().enumerate() {
                        d[o] = combine(&mode, d[o], u[t]);
                    }
                })*
                _ => return Err(c.err("unsupported dtype")),
            }
        };
    }
    go!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool);
    Ok(vec![Value::new(x.shape.clone(), data)])
}

fn one_hot(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let iv = c.input(0)?;
    let depth = c.input(1)?.data.to_f64_vec().first().copied().ok_or_else(|| c.err("empty depth"))? as i64;
    let values = c.input(2)?;
    if values.numel() != 2 || depth <= 0 {
        return Err(c.err("values must hold [off, on] and depth must be positive"));
    }
    let idx = iv.data.to_f64_vec();
    let rank = iv.shape.len() + 1;
    let axis = c.axis(c.int("axis", -1), rank)?;
    let outer: usize = iv.shape[..axis].iter().product();
    let inner: usize = iv.shape[axis..].iter().product();
    let d = depth as usize;
    let mut shape = iv.shape.clone();
    shape.insert(axis, d);
    c.checked_numel(&shape)?;
    let data = map_data!(&values.data, v => {
        let mut out = vec![v[0]; outer * d * inner];
        for o in 0..outer {
            for i in 0..inner {
                let mut k = idx[o * inner + i] as i64;
                if k < 0 {
                    k += depth;
                }
                if (0..depth).contains(&k) {
                    out[(o * d + k as usize) * inner + i] = v[1];
                }
            }
        }
        out
    });
    Ok(vec![Value::new(shape, data)])
}

fn pad(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    let mode = c.string("mode", "constant");
    let (pads, cval, axes) = if c.opset() >= 11 {
        let pads = c.input_i64s(1)?;
        let cval = c.opt(2).filter(|v| v.numel() > 0).cloned();
        let axes = if c.opt(3).is_some() { Some(c.input_i64s(3)?) } else { None };
        (pads, cval, axes)
    } else {
        (c.ints("pads").unwrap_or_default(), Some(Value::f32(vec![], vec![c.float("value", 0.0)])), None)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&v| c.axis(v, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(c.err(format!("pads has {} entries for {} axes", pads.len(), axes.len())));
    }
    let mut before = vec![0i64; rank];
    let mut after = vec![0i64; rank];
    for (k, &a) in axes.iter().enumerate() {
        before[a] = pads[k];
        after[a] = pads[k + axes.len()];
    }
    // No pad can be longer than a value may be: beyond that the arithmetic below (a dim plus
    // both pads, a coordinate minus a pad) could leave i64.
    let cap = crate::session::value_element_cap() as i64;
    if let Some(p) = pads.iter().find(|p| p.unsigned_abs() > cap as u64) {
        return Err(c.err(format!("pad {p} is longer than a value may be ({cap} elements)")));
    }
    let out: Vec<usize> =
        (0..rank).map(|d| (x.shape[d] as i64 + before[d] + after[d]).max(0) as usize).collect();
    let n = c.checked_numel(&out)?;
    // For every output element, the input element it copies (None: the constant).
    let mut src: Vec<Option<usize>> = Vec::with_capacity(n);
    for lin in 0..n {
        let mut rem = lin;
        let mut coords = vec![0i64; rank];
        for d in (0..rank).rev() {
            coords[d] = (rem % out[d]) as i64 - before[d];
            rem /= out[d];
        }
        let mut off = 0usize;
        let mut inside = true;
        for (d, &coord) in coords.iter().enumerate() {
            let len = x.shape[d] as i64;
            let mut p = coord;
            if p < 0 || p >= len {
                if len == 0 {
                    inside = false;
                    break;
                }
                p = match mode.as_str() {
                    "edge" => p.clamp(0, len - 1),
                    "wrap" => p.rem_euclid(len),
                    "reflect" if len > 1 => {
                        let period = 2 * (len - 1);
                        let m = p.rem_euclid(period);
                        if m >= len {
                            period - m
                        } else {
                            m
                        }
                    }
                    "reflect" => 0,
                    _ => {
                        inside = false;
                        break;
                    }
                };
            }
            off = off * x.shape[d] + p as usize;
        }
        src.push(inside.then_some(off));
    }
    let fill = match &cval {
        Some(v) => v.data.cast(x.dtype()).ok_or_else(|| c.err("constant_value dtype"))?,
        None => Data::zeros(x.dtype(), 1).ok_or_else(|| c.err("unsupported dtype"))?,
    };
    macro_rules! go {
        ($($var:ident),*) => {
            match (&x.data, &fill) {
                $((Data::$var(v), Data::$var(z)) => Data::$var(src.iter().map(|s| s.map_or(z[0], |i| v[i])).collect()),)*
                _ => return Err(c.err("unsupported dtype")),
            }
        };
    }
    let data = go!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool);
    Ok(vec![Value::new(out, data)])
}
