//! Indexing ops: Gather, GatherElements, GatherND (negative indices wrap; out-of-range indices
//! are an error naming the node, not a panic).

use crate::error::RuntimeError;
use crate::map_data;
use crate::node::OpCtx;
use crate::registry::Registry;
use crate::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.onnx("Gather", gather);
    r.onnx("GatherElements", gather_elements);
    r.onnx("GatherND", gather_nd);
}

fn fix(c: &OpCtx<'_>, i: i64, dim: usize) -> Result<usize, RuntimeError> {
    let j = if i < 0 { i + dim as i64 } else { i };
    if j < 0 || j >= dim as i64 {
        return Err(c.err(format!("index {i} out of range for a dim of {dim}")));
    }
    Ok(j as usize)
}

fn gather(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let idx_v = c.input(1)?;
    let rank = x.shape.len();
    let axis = c.axis(c.int("axis", 0), rank)?;
    let dim = x.shape[axis];
    let idx: Vec<usize> = c.input_i64s(1)?.into_iter().map(|i| fix(c, i, dim)).collect::<Result<_, _>>()?;
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut shape = x.shape[..axis].to_vec();
    shape.extend_from_slice(&idx_v.shape);
    shape.extend_from_slice(&x.shape[axis + 1..]);
    c.checked_numel(&shape)?;
    let data = map_data!(&x.data, v => {
        let mut out = Vec::with_capacity(outer * idx.len() * inner);
        for o in 0..outer {
            for &i in &idx {
                let at = (o * dim + i) * inner;
                out.extend_from_slice(&v[at..at + inner]);
            }
        }
        out
    });
    Ok(vec![Value::new(shape, data)])
}

fn gather_elements(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let iv = c.input(1)?;
    let rank = x.shape.len();
    let axis = c.axis(c.int("axis", 0), rank)?;
    if iv.shape.len() != rank {
        return Err(c.shape_err("indices must have the input's rank", &x.shape, &iv.shape));
    }
    // Off the axis an index's coordinate is its own position, so it must lie inside the input.
    if (0..rank).any(|d| d != axis && iv.shape[d] > x.shape[d]) {
        return Err(c.shape_err("indices exceed the input off the axis", &x.shape, &iv.shape));
    }
    let idx = c.input_i64s(1)?;
    let mut xs = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        xs[d] = xs[d + 1] * x.shape[d + 1];
    }
    let mut src = Vec::with_capacity(idx.len());
    for (lin, &i) in idx.iter().enumerate() {
        let mut rem = lin;
        let mut off = 0;
        for d in (0..rank).rev() {
            let coord = rem % iv.shape[d];
            rem /= iv.shape[d];
            let coord = if d == axis { fix(c, i, x.shape[d])? } else { coord };
            off += coord * xs[d];
        }
        src.push(off);
    }
    let data = map_data!(&x.data, v => src.iter().map(|&o| v[o]).collect());
    Ok(vec![Value::new(iv.shape.clone(), data)])
}

fn gather_nd(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let iv = c.input(1)?;
    let b = c.int("batch_dims", 0).max(0) as usize;
    let q = iv.shape.len();
    let r = x.shape.len();
    let k = *iv.shape.last().ok_or_else(|| c.err("indices must have rank >= 1"))?;
    // The batch dims must be the data's: a tuple's batch is found from its position.
    if b + k > r || b >= q || iv.shape[..b] != x.shape[..b] {
        return Err(c.shape_err("indices do not fit the data", &x.shape, &iv.shape));
    }
    let idx = c.input_i64s(1)?;
    let batch: usize = x.shape[..b].iter().product();
    let slice: usize = x.shape[b + k..].iter().product();
    let per_batch_data: usize = x.shape[b..].iter().product();
    let tuples = idx.len() / k.max(1);
    let tuples_per_batch = tuples / batch.max(1);
    let mut offs = Vec::with_capacity(tuples);
    for t in 0..tuples {
        let bi = t / tuples_per_batch.max(1);
        let mut off = 0usize;
        for j in 0..k {
            let d = x.shape[b + j];
            off = off * d + fix(c, idx[t * k + j], d)?;
        }
        offs.push(bi * per_batch_data + off * slice);
    }
    let mut shape = iv.shape[..q - 1].to_vec();
    shape.extend_from_slice(&x.shape[b + k..]);
    c.checked_numel(&shape)?;
    let data = map_data!(&x.data, v => {
        let mut out = Vec::with_capacity(offs.len() * slice);
        for &o in &offs {
            out.extend_from_slice(&v[o..o + slice]);
        }
        out
    });
    Ok(vec![Value::new(shape, data)])
}
