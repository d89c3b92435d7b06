//! Ops that make values: Constant, ConstantOfShape, Range, Trilu, EyeLike.

use crate::error::RuntimeError;
use crate::map_data;
use crate::node::{Attr, OpCtx};
use crate::registry::Registry;
use crate::value::{Data, Value};

pub(crate) fn register(r: &mut Registry) {
    r.onnx("Constant", constant);
    r.onnx("ConstantOfShape", constant_of_shape);
    r.onnx("Range", range);
    r.onnx("Trilu", trilu);
}

fn constant(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let v = match c.node.attrs.iter().find(|(k, _)| !k.is_empty()) {
        Some((k, a)) => match (k.as_str(), a) {
            ("value", Attr::Tensor(t)) => t.clone(),
            ("value_float", Attr::Float(f)) => Value::f32(vec![], vec![*f]),
            ("value_floats", Attr::Floats(f)) => Value::f32(vec![f.len()], f.clone()),
            ("value_int", Attr::Int(i)) => Value::i64(vec![], vec![*i]),
            ("value_ints", Attr::Ints(i)) => Value::i64(vec![i.len()], i.clone()),
            (k, _) => return Err(c.err(format!("Constant attribute '{k}' is not supported"))),
        },
        None => return Err(c.err("Constant without a value")),
    };
    Ok(vec![v])
}

fn constant_of_shape(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let shape: Vec<usize> = c.input_i64s(0)?.iter().map(|&d| d.max(0) as usize).collect();
    let n = c.checked_numel(&shape)?;
    let fill = match c.attr("value") {
        Some(Attr::Tensor(t)) => t.clone(),
        _ => Value::f32(vec![1], vec![0.0]),
    };
    if fill.numel() != 1 {
        return Err(c.err("value must hold one element"));
    }
    let data = map_data!(&fill.data, v => vec![v[0]; n]);
    Ok(vec![Value::new(shape, data)])
}

fn range(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let (s, l, d) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let start = s.data.to_f64_vec().first().copied().ok_or_else(|| c.err("empty start"))?;
    let limit = l.data.to_f64_vec().first().copied().ok_or_else(|| c.err("empty limit"))?;
    let delta = d.data.to_f64_vec().first().copied().ok_or_else(|| c.err("empty delta"))?;
    if delta == 0.0 {
        return Err(c.err("delta is 0"));
    }
    let n = ((limit - start) / delta).ceil().max(0.0) as usize;
    c.checked_numel(&[n])?;
    let data = match &s.data {
        Data::I64(_) | Data::I32(_) | Data::I16(_) | Data::I8(_) => {
            let (st, dl) = (start as i64, delta as i64);
            // Wrapping, as integer arithmetic in ONNX's reference (no panic on hostile limits).
            Data::I64((0..n as i64).map(|i| st.wrapping_add(i.wrapping_mul(dl))).collect())
        }
        _ => {
            // Accumulate in the input's type, as the reference implementation does.
            let mut v = Vec::with_capacity(n);
            let mut x = start;
            for _ in 0..n {
                v.push(x);
                x += delta;
            }
            Data::F64(v)
        }
    };
    let data = data.cast(s.dtype()).ok_or_else(|| c.err("unsupported dtype"))?;
    Ok(vec![Value::new(vec![n], data)])
}

fn trilu(c: &OpCtx<'_>) -> Result<Vec<Value>, RuntimeError> {
    let x = c.input(0)?;
    let k = if c.opt(1).is_some() { c.input_i64s(1)?.first().copied().unwrap_or(0) } else { 0 };
    let upper = c.int("upper", 1) != 0;
    let r = x.shape.len();
    if r < 2 {
        return Err(c.err("input must have rank >= 2"));
    }
    let (rows, cols) = (x.shape[r - 2], x.shape[r - 1]);
    let mut data = x.data.clone();
    let zero = Data::zeros(x.dtype(), 1).ok_or_else(|| c.err("unsupported dtype"))?;
    macro_rules! go {
        ($($var:ident),*) => {
            match (&mut data, &zero) {
                $((Data::$var(v), Data::$var(z)) => {
                    for (i, e) in v.iter_mut().enumerate() {
                        let row = (i / cols) % rows.max(1);
                        let col = i % cols;
                        let d = col as i64 - row as i64;
                        let keep = if upper { d >= k } else { d <= k };
                        if !keep {
                            *e = z[0];
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
