//! Shape ops: Reshape, Transpose, Squeeze/Unsqueeze, Flatten, Expand, Shape, Size, Concat,
//! Slice, Split, Tile. Inputs-versus-attributes differences between opsets are honoured
//! (Squeeze/Unsqueeze/Split axes and split sizes as inputs from 13, Slice from 10).

use super::broadcast::{broadcast_shape, expand};
use crate::error::RuntimeError;
use crate::map_data;
use crate::node::OpCtx;
use crate::registry::{Registry, ViewFn, DEFAULT_DOMAIN};
use crate::value::{Data, Value};

pub(crate) fn register(r: &mut Registry) {
    r.add_view(DEFAULT_DOMAIN, "Reshape", reshape, reshape_shape);
    r.onnx("Transpose", transpose);
    r.add_view(DEFAULT_DOMAIN, "Squeeze", squeeze, squeeze_shape);
    r.add_view(DEFAULT_DOMAIN, "Unsqueeze", unsqueeze, unsqueeze_shape);
    r.add_view(DEFAULT_DOMAIN, "Flatten", flatten, flatten_shape);
    r.add_view(DEFAULT_DOMAIN, "Identity", identity, identity_shape);
    r.onnx("Expand", expand_op);
    r.onnx("Shape", shape_op);
    r.onnx("Size", |c| Ok(vec![Value::i64(vec![], vec![c.input(0)?.numel() as i64])]));
    r.onnx("Concat", concat);
    r.onnx("Slice", slice);
    r.onnx("Split", split);
    r.onnx("Tile", tile);
}

/// A view op run on its own: input 0's data, copied, under the shape `shape_of` gives. (The
/// session moves the data instead when input 0 is not read after the node: see
/// [`crate::registry::ViewFn`].)
fn view(c: &OpCtx<'_>, shape_of: ViewFn) -> Result<Vec<Value>, RuntimeError> {
    let shape = shape_of(c)?;
    Ok(vec![Value::new(shape, c.input(0)?.data.clone())])
}

/// Identity's output shape.
pub(crate) fn identity_shape(c: &OpCtx<'_>) -> Result<Vec<usize>, RuntimeError> {
    Ok(c.input(0)?.shape.clone())
}

/// Identity.
pub(crate) fn identity(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    view(c, identity_shape)
}

fn reshape(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    view(c, reshape_shape)
}

/// `reshape`'s output shape (the data is the input's, unchanged).
pub(crate) fn reshape_shape(c: &OpCtx<'_>) -> Result<Vec<usize>, RuntimeError> {
    let x = c.input(0)?;
    let spec = if c.opset() >= 5 { c.input_i64s(1)? } else { c.ints("shape").unwrap_or_default() };
    reshape_target(c, &x.shape, &spec, c.int("allowzero", 0) != 0)
}

/// The shape `Reshape` gives an input of shape `shape` for the target `spec` (`0` copies the
/// input's dim unless `allowzero`, `-1` is inferred), or the error naming the node of `c`.
pub(crate) fn reshape_target(
    c: &OpCtx<'_>,
    shape: &[usize],
    spec: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, RuntimeError> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(
                *shape.get(i).ok_or_else(|| c.shape_err("0 copies a dim the input lacks", shape, &[]))?,
            ),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(c.err(format!("invalid target shape {spec:?}"))),
        }
    }
    // Products checked: a hostile target's dims can overflow them (and wrap to the count).
    let product = |dims: &[usize]| dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if let Some(i) = infer {
        let known = product(&out).unwrap_or(0);
        if known == 0 || numel % known != 0 {
            return Err(c.shape_err("cannot infer -1 of the target shape", shape, &out));
        }
        out[i] = numel / known;
    }
    if product(&out) != Some(numel) {
        return Err(c.shape_err("element count differs from the target shape", shape, &out));
    }
    Ok(out)
}

/// Permutes `v` (shape `shape`) by `perm`.
pub(crate) fn permute<T: Copy>(v: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let rank = shape.len();
    let n = v.len();
    if n == 0 || rank == 0 {
        return v.to_vec();
    }
    let mut in_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let st: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut out = Vec::with_capacity(n);
    // Row by row along the last output dim (a slice copy when it is the input's last dim too),
    // an odometer over the others.
    let (inner, ist) = (out_shape[rank - 1], st[rank - 1]);
    let mut idx = vec![0usize; rank - 1];
    let mut off = 0usize;
    for _ in 0..n / inner {
        if ist == 1 {
            out.extend_from_slice(&v[off..off + inner]);
        } else {
            out.extend((0..inner).map(|j| v[off + j * ist]));
        }
        let mut d = rank - 1;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            off += st[d];
            if idx[d] < out_shape[d] {
                break;
            }
            off -= st[d] * out_shape[d];
            idx[d] = 0;
        }
    }
    out
}

fn transpose(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    let perm: Vec<usize> = match c.ints("perm") {
        Some(p) => p.iter().map(|&a| c.axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    for &p in &perm {
        if seen.get(p).copied().unwrap_or(true) {
            return Err(c.err(format!("perm {perm:?} is not a permutation of rank {rank}")));
        }
        seen[p] = true;
    }
    if perm.len() != rank {
        return Err(c.err(format!("perm {perm:?} is not a permutation of rank {rank}")));
    }
    let shape = perm.iter().map(|&p| x.shape[p]).collect();
    let data = map_data!(&x.data, v => permute(v, &x.shape, &perm));
    Ok(vec![Value::new(shape, data)])
}

fn axes_arg(c: &OpCtx<'_>, since_input: i64) -> Result<Option<Vec<i64>>, RuntimeError> {
    if c.opset() >= since_input {
        Ok(match c.opt(1) {
            Some(_) => Some(c.input_i64s(1)?),
            None => None,
        })
    } else {
        Ok(c.ints("axes"))
    }
}

fn squeeze(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    view(c, squeeze_shape)
}

/// `squeeze`'s output shape (the data is the input's, unchanged).
pub(crate) fn squeeze_shape(c: &OpCtx<'_>) -> Result<Vec<usize>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    let axes: Vec<usize> = match axes_arg(c, 13)? {
        Some(a) => a.iter().map(|&ax| c.axis(ax, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).filter(|&i| x.shape[i] == 1).collect(),
    };
    for &a in &axes {
        if x.shape[a] != 1 {
            return Err(c.err(format!("cannot squeeze axis {a} of shape {:?}", x.shape)));
        }
    }
    let shape = x.shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect();
    Ok(shape)
}

fn unsqueeze(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    view(c, unsqueeze_shape)
}

/// `unsqueeze`'s output shape (the data is the input's, unchanged).
pub(crate) fn unsqueeze_shape(c: &OpCtx<'_>) -> Result<Vec<usize>, RuntimeError> {
    let x = c.input(0)?;
    let axes = axes_arg(c, 13)?.ok_or_else(|| c.err("axes are required"))?;
    let out_rank = x.shape.len() + axes.len();
    let mut axes: Vec<usize> = axes.iter().map(|&a| c.axis(a, out_rank)).collect::<Result<_, _>>()?;
    axes.sort_unstable();
    axes.dedup();
    let mut shape = Vec::with_capacity(out_rank);
    let mut it = x.shape.iter();
    for i in 0..out_rank {
        if axes.contains(&i) {
            shape.push(1);
        } else {
            shape.push(*it.next().ok_or_else(|| c.err("duplicate axes"))?);
        }
    }
    Ok(shape)
}

fn flatten(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    view(c, flatten_shape)
}

/// `flatten`'s output shape (the data is the input's, unchanged).
pub(crate) fn flatten_shape(c: &OpCtx<'_>) -> Result<Vec<usize>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    let a = c.int("axis", 1);
    let axis = if a < 0 { a + rank as i64 } else { a };
    if axis < 0 || axis > rank as i64 {
        return Err(c.err(format!("axis {a} out of range for rank {rank}")));
    }
    let axis = axis as usize;
    let outer: usize = x.shape[..axis].iter().product();
    Ok(vec![outer, x.shape[axis..].iter().product()])
}

fn expand_op(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let target: Vec<usize> = c.input_i64s(1)?.iter().map(|&d| d.max(0) as usize).collect();
    let out = broadcast_shape(&x.shape, &target)
        .ok_or_else(|| c.shape_err("input does not broadcast to the shape", &x.shape, &target))?;
    c.checked_numel(&out)?;
    let data = map_data!(&x.data, v => expand(v, &x.shape, &out));
    Ok(vec![Value::new(out, data)])
}

fn shape_op(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let r = x.shape.len() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clampi(c.int("start", 0));
    let end = clampi(c.int("end", r));
    let dims: Vec<i64> = x.shape[start..end.max(start)].iter().map(|&d| d as i64).collect();
    Ok(vec![Value::i64(vec![dims.len()], dims)])
}

fn concat(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let first = c.input(0)?;
    let rank = first.shape.len();
    let axis = c.axis(c.int("axis", 0), rank)?;
    let parts: Vec<&Value> = (0..c.inputs.len()).map(|i| c.input(i)).collect::<Result<_, _>>()?;
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for p in &parts {
        if p.shape.len() != rank
            || p.dtype() != first.dtype()
            || (0..rank).any(|d| d != axis && p.shape[d] != first.shape[d])
        {
            return Err(c.shape_err(
                "inputs differ outside the concat axis (or in dtype)",
                &first.shape,
                &p.shape,
            ));
        }
        shape[axis] = shape[axis].saturating_add(p.shape[axis]);
    }
    c.checked_numel(&shape)?;
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut data = Data::zeros(first.dtype(), 0).ok_or_else(|| c.err("unsupported dtype"))?;
    macro_rules! cat {
        ($($var:ident),*) => {
            match &mut data {
                $(Data::$var(out) => {
                    out.reserve(shape.iter().product());
                    for o in 0..outer {
                        for p in &parts {
                            let Data::$var(v) = &p.data else { unreachable!() };
                            let chunk = p.shape[axis] * inner;
                            out.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
                        }
                    }
                })*
            }
        };
    }
    cat!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool, I4, U4);
    Ok(vec![Value::new(shape, data)])
}

/// Copies the box `starts[d] + k*steps[d]` for `k < counts[d]` out of `v` (shape `shape`).
fn gather_box<T: Copy>(v: &[T], shape: &[usize], starts: &[i64], steps: &[i64], counts: &[usize]) -> Vec<T> {
    let rank = shape.len();
    let n: usize = counts.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let mut strides = vec![1i64; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1] as i64;
    }
    let base: i64 = (0..rank).map(|d| starts[d] * strides[d]).sum();
    if rank == 0 {
        out.push(v[base as usize]);
        return out;
    }
    // Row by row along the last axis (one contiguous run of the input when its step is 1:
    // rotate_half's halves, a KV cache's window), an odometer over the other axes.
    let (inner, step) = (counts[rank - 1], steps[rank - 1]);
    let mut idx = vec![0usize; rank - 1];
    let mut off = base;
    for _ in 0..n / inner {
        if step == 1 {
            out.extend_from_slice(&v[off as usize..off as usize + inner]);
        } else {
            out.extend((0..inner as i64).map(|j| v[(off + j * step) as usize]));
        }
        let mut d = rank - 1;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            off += steps[d] * strides[d];
            if idx[d] < counts[d] {
                break;
            }
            off -= steps[d] * strides[d] * counts[d] as i64;
            idx[d] = 0;
        }
    }
    out
}

fn slice(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    let (starts, ends, axes, steps) = if c.opset() >= 10 {
        let opt = |i: usize| -> Result<Option<Vec<i64>>, RuntimeError> {
            if c.opt(i).is_some() {
                Ok(Some(c.input_i64s(i)?))
            } else {
                Ok(None)
            }
        };
        (c.input_i64s(1)?, c.input_i64s(2)?, opt(3)?, opt(4)?)
    } else {
        (c.ints("starts").unwrap_or_default(), c.ints("ends").unwrap_or_default(), c.ints("axes"), None)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&ax| c.axis(ax, rank)).collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(c.err("starts, ends, axes and steps must have the same length"));
    }
    let mut st: Vec<i64> = vec![0; rank];
    let mut sp: Vec<i64> = vec![1; rank];
    let mut counts: Vec<usize> = x.shape.clone();
    for (k, &a) in axes.iter().enumerate() {
        let dim = x.shape[a] as i64;
        let step = steps[k];
        if step == 0 {
            return Err(c.err("slice step 0"));
        }
        let norm = |v: i64| if v < 0 { v + dim } else { v };
        let (s, e) = if step > 0 {
            (norm(starts[k]).clamp(0, dim), norm(ends[k]).clamp(0, dim))
        } else {
            (norm(starts[k]).clamp(-1, dim - 1), norm(ends[k]).clamp(-1, dim - 1))
        };
        // ⌈span / |step|⌉ without forming `span + |step| - 1`, which overflows for a hostile
        // step near i64's limits (the span is at most dim + 1).
        let span = if step > 0 { e - s } else { s - e };
        let count = if span <= 0 { 0 } else { (span as u64 - 1) / step.unsigned_abs() + 1 };
        st[a] = s;
        sp[a] = step;
        counts[a] = count as usize;
    }
    let data = map_data!(&x.data, v => gather_box(v, &x.shape, &st, &sp, &counts));
    Ok(vec![Value::new(counts, data)])
}

fn split(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let rank = x.shape.len();
    let axis = c.axis(c.int("axis", 0), rank)?;
    let dim = x.shape[axis];
    let n_out = c.node.outputs.len();
    let sizes: Vec<usize> = {
        let given = if c.opset() >= 13 {
            if c.opt(1).is_some() {
                Some(c.input_i64s(1)?)
            } else {
                None
            }
        } else {
            c.ints("split")
        };
        match given {
            Some(s) => s.iter().map(|&v| v.max(0) as usize).collect(),
            None => {
                let parts = if c.opset() >= 18 { c.int("num_outputs", n_out as i64) } else { n_out as i64 };
                if parts != n_out as i64 || parts == 0 {
                    return Err(c.err(format!("num_outputs is {parts}, the node has {n_out} outputs")));
                }
                let parts = n_out;
                let chunk = dim.div_ceil(parts);
                (0..parts).map(|i| chunk.min(dim.saturating_sub(i * chunk))).collect()
            }
        }
    };
    if sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) != Some(dim) {
        return Err(c.shape_err("split sizes do not add up to the axis length", &sizes, &x.shape));
    }
    let mut outs = Vec::with_capacity(sizes.len());
    let mut start = 0i64;
    for &s in &sizes {
        let mut st = vec![0i64; rank];
        st[axis] = start;
        let mut counts = x.shape.clone();
        counts[axis] = s;
        let data = map_data!(&x.data, v => gather_box(v, &x.shape, &st, &vec![1; rank], &counts));
        outs.push(Value::new(counts, data));
        start += s as i64;
    }
    Ok(outs)
}

fn tile(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let reps = c.input_i64s(1)?;
    if reps.len() != x.shape.len() {
        return Err(c.shape_err("repeats must have one entry per dim", &x.shape, &[reps.len()]));
    }
    let out: Vec<usize> =
        x.shape.iter().zip(&reps).map(|(&d, &r)| d.saturating_mul(r.max(0) as usize)).collect();
    let n = c.checked_numel(&out)?;
    let rank = out.len();
    let idx: Vec<usize> = (0..n)
        .map(|mut lin| {
            let mut src = 0usize;
            let mut mul = 1usize;
            for d in (0..rank).rev() {
                let i = lin % out[d];
                lin /= out[d];
                src += (i % x.shape[d]) * mul;
                mul *= x.shape[d];
            }
            src
        })
        .collect();
    let data = map_data!(&x.data, v => idx.iter().map(|&i| v[i]).collect());
    Ok(vec![Value::new(out, data)])
}
