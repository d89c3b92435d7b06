//! Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare), ArgMax/ArgMin
//! and CumSum. Axes come from an attribute before opset 13 (ReduceSum) or 18 (the others), and
//! from the second input after; both are honoured by opset.

use super::broadcast::index_map;
use super::norm::from_f64;
use crate::error::RuntimeError;
use crate::node::OpCtx;
use crate::registry::Registry;
use crate::value::{Data, Elem, Value};
use crate::with_data;

#[derive(Clone, Copy)]
enum Kind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

pub(crate) fn register(r: &mut Registry) {
    r.onnx("ReduceSum", |c| reduce(c, Kind::Sum, 13));
    r.onnx("ReduceMean", |c| reduce(c, Kind::Mean, 18));
    r.onnx("ReduceMax", |c| reduce(c, Kind::Max, 18));
    r.onnx("ReduceMin", |c| reduce(c, Kind::Min, 18));
    r.onnx("ReduceProd", |c| reduce(c, Kind::Prod, 18));
    r.onnx("ReduceL1", |c| reduce(c, Kind::L1, 18));
    r.onnx("ReduceL2", |c| reduce(c, Kind::L2, 18));
    r.onnx("ReduceLogSum", |c| reduce(c, Kind::LogSum, 18));
    r.onnx("ReduceLogSumExp", |c| reduce(c, Kind::LogSumExp, 18));
    r.onnx("ReduceSumSquare", |c| reduce(c, Kind::SumSquare, 18));
    r.onnx("ArgMax", |c| arg(c, true));
    r.onnx("ArgMin", |c| arg(c, false));
    r.onnx("CumSum", |c| cumulative(c, false));
    r.onnx("CumProd", |c| cumulative(c, true));
    r.onnx("TopK", top_k);
}

fn reduce(c: &OpCtx<'_>, kind: Kind, axes_input_since: i64) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    let axes: Option<Vec<i64>> = if c.opset() >= axes_input_since {
        match c.opt(1) {
            Some(_) => Some(c.input_i64s(1)?),
            None => None,
        }
    } else {
        c.ints("axes")
    };
    let keep = c.int("keepdims", 1) != 0;
    let axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|&ax| c.axis(ax, rank)).collect::<Result<_, _>>()?,
        _ if c.int("noop_with_empty_axes", 0) != 0 => return Ok(vec![x.clone()]),
        _ => (0..rank).collect(),
    };
    let mut kshape = x.shape.clone();
    for &a in &axes {
        kshape[a] = 1;
    }
    let out_n: usize = kshape.iter().product();
    let count = (x.numel() / out_n.max(1)).max(if x.numel() == 0 { 0 } else { 1 });
    let is_bool = x.dtype() == smelt_tensor::DType::Bool;
    let init = match kind {
        Kind::Max if is_bool => 0.0,
        Kind::Min if is_bool => 1.0,
        Kind::Max => f64::NEG_INFINITY,
        Kind::Min => f64::INFINITY,
        Kind::Prod => 1.0,
        _ => 0.0,
    };
    let step = |a: f64, e: f64| match kind {
        Kind::Sum | Kind::Mean | Kind::LogSum => a + e,
        Kind::Max => {
            if e.is_nan() || a > e {
                if e.is_nan() {
                    e
                } else {
                    a
                }
            } else {
                e
            }
        }
        Kind::Min => {
            if e.is_nan() || a < e {
                if e.is_nan() {
                    e
                } else {
                    a
                }
            } else {
                e
            }
        }
        Kind::Prod => a * e,
        Kind::L1 => a + e.abs(),
        Kind::L2 | Kind::SumSquare => a + e * e,
        Kind::LogSumExp => a + e.exp(),
    };
    let mut acc = vec![init; out_n];
    let mut distinct = axes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let trailing = distinct.iter().enumerate().all(|(i, &a)| a == rank - distinct.len() + i) && count > 0;
    if trailing {
        // Reduced dims are the innermost: each output folds one contiguous run, in the same
        // order as the general path below.
        with_data!(&x.data, v => for (a, run) in acc.iter_mut().zip(v.chunks(count)) {
            *a = run.iter().fold(*a, |a, e| step(a, e.to_f64()));
        });
    } else {
        let v = x.data.to_f64_vec();
        let map = index_map(&kshape, &x.shape);
        for (i, &o) in map.iter().enumerate() {
            acc[o] = step(acc[o], v[i]);
        }
    }
    for a in &mut acc {
        *a = match kind {
            Kind::Mean => *a / count as f64,
            Kind::L2 => a.sqrt(),
            Kind::LogSum | Kind::LogSumExp => a.ln(),
            _ => *a,
        };
    }
    let shape = if keep {
        kshape
    } else {
        x.shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
    };
    Ok(vec![Value::new(shape, from_f64(c, x.dtype(), acc)?)])
}

fn arg(c: &OpCtx<'_>, max: bool) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    let axis = c.axis(c.int("axis", 0), rank)?;
    let keep = c.int("keepdims", 1) != 0;
    let last = c.int("select_last_index", 0) != 0;
    let v = x.data.to_f64_vec();
    let outer: usize = x.shape[..axis].iter().product();
    let len = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0usize;
            for j in 1..len {
                let (cur, b) = (v[o * len * inner + j * inner + i], v[o * len * inner + best * inner + i]);
                let better = if max { cur > b || (last && cur == b) } else { cur < b || (last && cur == b) };
                if better {
                    best = j;
                }
            }
            out.push(best as i64);
        }
    }
    let mut shape = x.shape.clone();
    if keep {
        shape[axis] = 1;
    } else {
        shape.remove(axis);
    }
    Ok(vec![Value::new(shape, Data::I64(out))])
}

fn cumulative(c: &OpCtx<'_>, prod: bool) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let axis_v = c.input_i64s(1)?;
    let axis = c.axis(*axis_v.first().ok_or_else(|| c.err("axis input is empty"))?, x.shape.len())?;
    let exclusive = c.int("exclusive", 0) != 0;
    let reverse = c.int("reverse", 0) != 0;
    let v = x.data.to_f64_vec();
    let outer: usize = x.shape[..axis].iter().product();
    let len = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut out = vec![0f64; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = if prod { 1f64 } else { 0f64 };
            for step in 0..len {
                let j = if reverse { len - 1 - step } else { step };
                let at = o * len * inner + j * inner + i;
                if exclusive {
                    out[at] = acc;
                }
                acc = if prod { acc * v[at] } else { acc + v[at] };
                if !exclusive {
                    out[at] = acc;
                }
            }
        }
    }
    Ok(vec![Value::new(x.shape.clone(), from_f64(c, x.dtype(), out)?)])
}

fn top_k(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let k = if c.opset() >= 10 { c.input_i64s(1)?.first().copied().unwrap_or(0) } else { c.int("k", 0) };
    let rank = x.shape.len();
    let axis = c.axis(c.int("axis", -1), rank)?;
    let largest = c.int("largest", 1) != 0;
    let len = x.shape[axis];
    if k < 0 || k as usize > len {
        return Err(c.err(format!("k = {k} for an axis of {len}")));
    }
    let k = k as usize;
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let v = x.data.to_f64_vec();
    let mut vals = vec![0f64; outer * k * inner];
    let mut idx = vec![0i64; outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| o * len * inner + j * inner + i;
            let mut order: Vec<usize> = (0..len).collect();
            // Stable sort: equal values keep the lower index first, as the spec asks.
            order.sort_by(|&a, &b| {
                let (x, y) = (v[at(a)], v[at(b)]);
                let ord = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                if largest {
                    ord.reverse()
                } else {
                    ord
                }
            });
            for (j, &src) in order.iter().take(k).enumerate() {
                vals[o * k * inner + j * inner + i] = v[at(src)];
                idx[o * k * inner + j * inner + i] = src as i64;
            }
        }
    }
    let mut shape = x.shape.clone();
    shape[axis] = k;
    Ok(vec![Value::new(shape.clone(), from_f64(c, x.dtype(), vals)?), Value::new(shape, Data::I64(idx))])
}
